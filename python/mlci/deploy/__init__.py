"""Kubernetes deploys: render manifests (render), validate them offline (validate), gate promotion on a PASS
accuracy record (gate), and roll out with kubectl, undoing a failed rollout (kubectl). `mlci deploy` is cli."""
