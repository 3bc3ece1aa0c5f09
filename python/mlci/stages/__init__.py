"""The in-image test stages: unit, acceptance and accuracy, each run inside the image `mlci build` made."""
