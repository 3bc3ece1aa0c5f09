"""The pipeline: what runs for a branch and build cause (plan), and running it locally (run)."""
