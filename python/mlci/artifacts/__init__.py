"""Models and test data from S3: dependency files (mlci lock or DVC), a shared verified cache, parallel
resumable downloads. Entry points: `mlci.artifacts.api` (library) and `mlci.artifacts.cli` (commands)."""
