"""Events in, task rows and chains out: parsing, rules, ingest and the claim-publish hand-off."""
