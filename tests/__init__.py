"""videofleet's test suite."""

import os

# moto's server answers every origin with CORS headers unless told not to (read when moto is
# first imported); R2 and S3 apply only the bucket's CORS rules, and the browser tests must show
# that those rules are enough.
os.environ.setdefault("MOTO_DISABLE_GLOBAL_CORS", "true")
