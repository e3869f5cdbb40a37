"""libyaml's safe loader and emitter give what PyYAML's pure-Python ones give."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from omni_recovery.yaml_text import SAFE_DUMPER, SAFE_LOADER, load_yaml, safe_dump

DOCUMENTS: list[Any] = [
    {
        "long": "word " * 60,
        "unbroken": "a" * 150 + " b c",
        "unicode": "ünïcødé",
        "lines": "one\ntwo\n",
        "looks like other types": ["yes", "0x10", "2026-01-01", "1e3", "null", "", "a: b", "- x"],
        "values": [None, True, 3, 2.5, {"nested": [1, {"deeper": []}]}],
    },
    ["a", {"b": {}}, []],
]


@pytest.mark.parametrize("document", DOCUMENTS)
@pytest.mark.parametrize(
    "options",
    [
        {"sort_keys": False, "default_flow_style": False, "allow_unicode": True, "width": 100},
        {"sort_keys": False},
        {},
    ],
)
def test_safe_dump_writes_what_pyyaml_writes(document: Any, options: dict[str, Any]) -> None:
    text = safe_dump(document, **options)
    assert text == yaml.safe_dump(document, **options)
    assert load_yaml(text) == document


def test_a_lone_scalar_reads_back_the_same() -> None:
    assert load_yaml(safe_dump("plain")) == "plain" == load_yaml(yaml.safe_dump("plain"))


def test_libyaml_is_used_when_pyyaml_has_it() -> None:
    assert yaml.__with_libyaml__
    assert SAFE_LOADER is yaml.CSafeLoader and SAFE_DUMPER is yaml.CSafeDumper


def test_load_yaml_refuses_python_objects() -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']")
