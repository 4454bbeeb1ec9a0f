"""The fault suite (``make faults``): real outages on private services, counted in a table."""
