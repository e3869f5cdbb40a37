"""MAC addresses and storage paths inside other documents' strings, under fields no reader knows.

An old NIC's MAC or a Director's old storage path written into a larger string (a command line, a
URL, a comment) of a document that is not the node's or the Director's own is rewritten to the
plan's new value, with a change naming the document, the place in it (a JSON pointer), the old and
the new string, whatever the MAC's case or separator; a path is rewritten whole or as the head of a
longer path, never as part of another name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from omni_recovery.backupset.index_db import HardwareNode
from tests.foreign_shapes import Texts
from tests.transforms.test_environment_model_foreign import demo_texts, hardware_rows, spec_only
from tests.transforms.test_foreign_shapes import laid_out
from transforms.adapt.changes import DocumentChange
from transforms.documents import Environment
from transforms.layout.mappings import ambiguous_path_warnings, ambiguous_paths
from transforms.plan import Plan

DOC = "environment.yaml"


@pytest.fixture(scope="module")
def texts(demo_root: Path) -> Texts:
    return {
        **spec_only(demo_texts(demo_root)),
        **{rel: t for rel, t in demo_texts(demo_root).items() if rel.startswith("nodes/")},
    }


@pytest.fixture(scope="module")
def hardware(demo_root: Path) -> tuple[HardwareNode, ...]:
    return hardware_rows(demo_root)


def _with_field(texts: Texts, value: str) -> Texts:
    doc = yaml.safe_load(texts[DOC])
    return {**texts, DOC: yaml.safe_dump({**doc, "x-operator-note": {"deep": [value]}})}


def _change(
    texts: Texts, value: str, demo: Environment, hardware: tuple[HardwareNode, ...]
) -> tuple[Plan, DocumentChange]:
    plan, layout = laid_out(_with_field(texts, value), demo, hardware)
    (change,) = [c for c in layout.changes if c.document == DOC and c.pointer == "/x-operator-note/deep/0"]
    assert change.old == value
    return plan, change


def _new_mac(plan: Plan, demo: Environment) -> tuple[str, str]:
    """(old MAC, new MAC) of the first old NIC the plan moves onto another MAC."""
    for node in demo.nodes:
        for nic in node.nics:
            for a in plan.adaptations:
                if a.kind == "mac" and str(a.old).split()[:2] == [nic.name, nic.mac]:
                    return nic.mac, str(a.new).split()[2]  # "{node} {nic} {mac} {address}"
    raise AssertionError("the plan moves no MAC")


@pytest.mark.parametrize(
    "template",
    ["ipmitool lan set 1 macaddr {mac}", "bmc: http://console/?mac={mac}&x=1", "{mac}"],
    ids=["command", "url", "whole"],
)
@pytest.mark.parametrize("spelling", ["lower", "upper", "dashes"])
def test_an_old_mac_inside_any_string_is_rewritten(
    template: str, spelling: str, texts: Texts, demo: Environment, hardware: tuple[HardwareNode, ...]
) -> None:
    plan, _ = laid_out(texts, demo, hardware)
    old, new = _new_mac(plan, demo)
    spell = {"lower": str.lower, "upper": str.upper, "dashes": lambda m: m.lower().replace(":", "-")}[
        spelling
    ]
    plan, change = _change(texts, template.format(mac=spell(old)), demo, hardware)
    assert change.new == template.format(mac=spell(new)), change
    assert any(a.kind == "mac" for a in change.adaptations)


@pytest.mark.parametrize(
    "template",
    ["tar -C {path}/sub -cf - .", "file://{path}", "{path}", "paths={path}:{path}/x"],
    ids=["below", "url", "whole", "twice"],
)
def test_an_old_storage_path_inside_any_string_is_rewritten(
    template: str, texts: Texts, demo: Environment, hardware: tuple[HardwareNode, ...]
) -> None:
    plan, _ = laid_out(texts, demo, hardware)
    users: dict[str, set[str]] = {}
    for p in plan.paths:
        users.setdefault(p.old_path, set()).add(p.new_path)
    old, news = next((o, n) for o, n in sorted(users.items()) if len(n) == 1 and o not in n)
    (new,) = news
    plan, change = _change(texts, template.format(path=old), demo, hardware)
    assert change.new == template.format(path=new), change
    assert any(a.kind == "storage-path" for a in change.adaptations)


def test_a_longer_name_that_starts_like_an_old_path_is_kept(
    texts: Texts, demo: Environment, hardware: tuple[HardwareNode, ...]
) -> None:
    plan, _ = laid_out(texts, demo, hardware)
    old = next(p.old_path for p in plan.paths if p.old_path and p.old_path != p.new_path)
    plan, layout = laid_out(_with_field(texts, f"{old}-archive/x"), demo, hardware)
    assert not [c for c in layout.changes if c.pointer == "/x-operator-note/deep/0"]


@pytest.mark.parametrize("template", ["tar -C {path}/sub -cf - .", "{path}"], ids=["below", "whole"])
def test_an_ambiguous_old_storage_path_left_in_a_shared_document_is_a_warning(
    template: str, texts: Texts, demo: Environment, hardware: tuple[HardwareNode, ...]
) -> None:
    plan, _ = laid_out(texts, demo, hardware)
    old, news = next((o, n) for o, n in sorted(ambiguous_paths(plan).items()))
    value = template.format(path=old)
    shared = _with_field(texts, value)
    plan, layout = laid_out(shared, demo, hardware)
    assert not [c for c in layout.changes if c.pointer == "/x-operator-note/deep/0"]
    place = f"{DOC} /x-operator-note/deep/0"
    reason = f"old storage path {old} is ambiguous: {len(news)} new paths ({', '.join(news)})"
    (left,) = [a for a in layout.adaptations_applied if a.subject == place]
    assert (left.kind, left.old, left.new) == ("storage-path", value, value)
    assert reason in left.reason and left.reason.startswith("warning: left unchanged")
    documents = {rel: text.encode() for rel, text in shared.items()}
    assert left in ambiguous_path_warnings(plan, documents)  # the plan and the report say it too


def test_an_ambiguous_path_is_rewritten_without_warning_in_its_owners_documents(
    texts: Texts, demo: Environment, hardware: tuple[HardwareNode, ...]
) -> None:
    plan, layout = laid_out(texts, demo, hardware)
    assert ambiguous_paths(plan), "the demo shares no old storage path between Directors"
    documents = {rel: text.encode() for rel, text in texts.items()}
    warnings = ambiguous_path_warnings(plan, documents)
    warned = {a.subject.split()[0] for a in warnings}
    assert not any(rel.startswith(("directors/", "volumes/")) for rel in warned), warned
    left = {a for a in layout.adaptations_applied if a.reason.startswith("warning: left")}
    assert left <= set(warnings)
