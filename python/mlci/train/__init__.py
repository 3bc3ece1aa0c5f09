"""Training in the pipeline: build the training image, run it (local Docker or a Kubernetes Job),
evaluate the new model against the current one, and publish it only on PASS, coupled to its code and data.

Modules: settings (config -> TrainSettings), digests (run-cache key), cache (run cache in S3), local (docker-py
runner), kube (Job render + kubectl), record (training record), gitops (branch, tag, PR), run (the flow), cli.
"""
