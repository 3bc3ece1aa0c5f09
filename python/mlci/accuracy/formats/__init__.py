"""Dataset formats behind `mlci.accuracy.data`: one module per format, each a `Dataset` subclass."""
