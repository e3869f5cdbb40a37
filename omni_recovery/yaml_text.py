"""Safe YAML parsing and writing through libyaml when PyYAML was built with it (the pure-Python parser
is ~5x slower, the emitter ~4x).

`load_yaml_with_lines` is the line-aware loader of the inventory and the plan reader: mappings come
back as `LineMap` (a dict that remembers the line of itself and of each key, and the raw text of
scalar values, so an unquoted MAC such as 52:54:00:12:34:56 — which YAML 1.1 reads as a
sexagesimal number — keeps its text), sequences as `LineList`.
"""

from __future__ import annotations

from typing import Any

import yaml

SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SAFE_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load_yaml(data: str | bytes) -> Any:
    """Like `yaml.safe_load`: plain Python values only; raises yaml.YAMLError."""
    return yaml.load(data, Loader=SAFE_LOADER)


def safe_dump(data: Any, **options: Any) -> str:
    """Like `yaml.safe_dump` (same options, same text for mappings and lists; a lone scalar lacks the
    pure-Python emitter's `...` end marker), emitted by libyaml when there is one."""
    return yaml.dump(data, Dumper=SAFE_DUMPER, **options)


class LineMap(dict[str, Any]):
    """A mapping read from YAML that knows its own line, each key's line and each scalar's raw text."""

    line: int = 0
    key_lines: dict[str, int]
    raw: dict[str, str]

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A sequence read from YAML that knows its line and each item's line."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


# libyaml's parser when present (plans run to thousands of lines); the constructors stay Python.
class _LineLoader(SAFE_LOADER):  # type: ignore[misc,valid-type]
    pass


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> LineMap:
    result = LineMap()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    result.raw = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        key = str(key)
        if key in result:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.ScalarNode):
            result.raw[key] = str(value_node.value)
    return result


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList(loader.construct_object(item, deep=True) for item in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [item.start_mark.line + 1 for item in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def load_yaml_with_lines(text: str) -> Any:
    """Parse YAML safely; mappings become LineMap and sequences LineList. Raises yaml.YAMLError."""
    return yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass


def yaml_error_line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None)
    return int(mark.line) + 1 if mark is not None else 0
