"""ml-ci.yaml: schema, loading, validation and docs."""

from .loader import Config, ConfigError, load_config, redact, safe_join, validate

__all__ = ["Config", "ConfigError", "load_config", "redact", "safe_join", "validate"]
