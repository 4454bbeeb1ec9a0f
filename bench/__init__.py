"""Benchmarks of the media fast path; see bench/README.md."""
