"""Safe YAML parsing through libyaml when PyYAML was built with it (the pure-Python parser is ~5x slower)."""

from __future__ import annotations

from typing import Any

import yaml

SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(data: str | bytes) -> Any:
    """Like `yaml.safe_load`: plain Python values only; raises yaml.YAMLError."""
    return yaml.load(data, Loader=SAFE_LOADER)
