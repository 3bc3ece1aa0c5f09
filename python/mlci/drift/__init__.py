"""Drift monitoring: reference statistics, production logs from S3, per-feature tests, reports, retraining trigger.

Flow of `mlci drift check`: reference.json (compact statistics of the training data) + a window of production
logs (sampled) -> tests.py (KS / chi-square / PSI per feature, Holm across features) -> drift.json + report
-> exit 0 (no drift) / 1 (drift; optionally start the retraining job) / 2 (bad input) / 3 (too few rows).
"""
