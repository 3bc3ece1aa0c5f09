"""Reports (report.md / report.html), the accuracy history store, baselines and pull-request comments."""
