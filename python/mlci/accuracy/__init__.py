"""Sample-based accuracy tests: seeded stratified sampling, metrics, sequential and fixed-n statistics,
a pytest-xdist engine that stops once the verdict is reached, per-shard results and their merge."""
