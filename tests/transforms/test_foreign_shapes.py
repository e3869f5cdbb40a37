"""Documents in every shape another writer may pick are read, planned and laid out, old addresses gone.

Tier one of the foreign-set tests (the whole flow is tests/test_foreign_sets.py): environments
reshaped by tests/foreign_shapes.py go through the document reader, planning and the restore layout
in process. Each must give the same facts as the demo's own documents, a plan, and a layout in which
no document keeps an address of an old subnet, an embedded old address moved exactly as the plan
moves it, and every document without a change copied byte for byte. One test per shape family names
the family, so a failure says which shape broke. OMNI_RECOVERY_NIGHTLY=1 runs ten times as many.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from omni_recovery.backupset.index_db import HardwareNode
from tests.builders import same_shaped
from tests.foreign_shapes import EMBEDDED, FAMILIES, STRAY_ADDRESS, Choose, Texts, fixed, reshape
from tests.transforms.catalog.test_config_shapes import TABLES
from tests.transforms.test_environment_model_foreign import foreign, hardware_rows
from transforms.configs import config_tables
from transforms.documents import VM_ID_KEYS, Environment, text_of, vm_items
from transforms.layout.files import TargetFile
from transforms.plan import Plan, generate_plan
from transforms.target_layout import TargetLayout, target_layout

SCALE = 10 if os.environ.get("OMNI_RECOVERY_NIGHTLY") else 1
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\.?\d)")


def facts(env: Environment) -> dict[str, object]:
    """What every shape must agree on."""
    return {
        "subnets": sorted((s.name, s.cidr) for s in env.network.subnets),
        "vms": sorted((vm.vm_id, vm.owner, sorted((n.subnet, n.ip) for n in vm.networks)) for vm in env.vms),
        "directors": sorted((d.director_id, d.node, d.addresses, d.storage_paths) for d in env.directors),
        "routes": sorted((r.destination, r.gateway) for r in env.network.routes),
        "records": sorted((r.name, r.address) for r in env.network.records),
        "dns": sorted(env.network.dns_servers),
        "links": sorted((x.source, x.target) for x in env.network.links),
        "apps": sorted((a.name, sorted(a.depends_on)) for a in env.applications),
    }


def laid_out(
    texts: Texts, demo: Environment, hardware: tuple[HardwareNode, ...]
) -> tuple[Plan, TargetLayout]:
    env = foreign(demo, texts, hardware)
    plan = generate_plan(env, same_shaped(demo), "advanced", "foreign-set")
    documents = {rel: text.encode() for rel, text in texts.items()}
    env_files = [(rel, "file", 0o100644) for rel in sorted(texts)]
    return plan, target_layout(env, documents, plan, same_shaped(demo), env_files=env_files)


def check_layout(texts: Texts, plan: Plan, layout: TargetLayout) -> None:
    old_nets = [ipaddress.ip_network(s.old) for s in plan.subnets]
    moved = {a.old: a.new for a in plan.addresses}
    changed_documents = {c.document for c in layout.changes}
    for f in layout.files:
        text = f.content.decode() if f.content is not None else texts.get(f.source or "", "")
        left = [a for a in IPV4.findall(text) if any(ipaddress.ip_address(a) in n for n in old_nets)]
        assert not left, f"{f.root} {f.relpath} keeps old addresses {left}"
        if f.origin in changed_documents or f.origin is None or f.relpath != f.origin:
            continue
        structural = f.origin.startswith(("directors/", "applications/", "volumes/", "nodes/"))
        assert structural or f.source == f.origin, f"{f.relpath} has no change yet was rewritten"
    assert _vm_ids(texts, {f.origin: f for f in layout.files if f.origin}) == _vm_ids(texts), "VMs lost"
    by_pointer = {(c.document, c.pointer): c for c in layout.changes}
    for rel, (pointer, _) in EMBEDDED.items():
        change = by_pointer.get((rel, pointer))
        if change is None:
            continue  # this pick wrote no extra fields
        old = IPV4.findall(change.old)[0]
        assert change.new == change.old.replace(old, moved[old]), change
    stray = [c for c in layout.changes if c.old == STRAY_ADDRESS]
    assert all(c.new not in moved.values() for c in stray), "a stray address takes no planned address"


def _vm_ids(texts: Texts, restored: dict[str, TargetFile] | None = None) -> set[str]:
    """The ids of the VMs of every Director's state.json, as written or as laid out."""
    found = set()
    for rel, text in texts.items():
        if not (rel.startswith("directors/") and rel.endswith("/state.json")):
            continue
        if restored is not None:
            f = restored[rel]
            text = f.content.decode() if f.content is not None else text
        found |= {text_of(vm, *VM_ID_KEYS) or "" for vm in vm_items(json.loads(text))}
    return found


@pytest.fixture(scope="module")
def hardware(demo_root: Path) -> tuple[HardwareNode, ...]:
    return hardware_rows(demo_root)


@pytest.fixture(scope="module")
def canonical(demo: Environment, spec_texts: Texts, hardware: tuple[HardwareNode, ...]) -> dict[str, object]:
    return facts(foreign(demo, spec_texts, hardware))


@pytest.fixture(scope="module")
def spec_texts(demo_root: Path) -> Texts:
    from tests.transforms.test_environment_model_foreign import demo_texts, spec_only

    return spec_only(demo_texts(demo_root))


def drawn(data: st.DataObject) -> Choose:
    return lambda family, options: data.draw(st.sampled_from(list(options)), label=family)


@settings(
    max_examples=300 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=not SCALE > 1,
    phases=[Phase.explicit, Phase.generate],  # shrinking a 250-draw case takes minutes
    print_blob=False,
)
@given(data=st.data())
def test_every_generated_shape_reads_plans_and_lays_out_alike(
    data: st.DataObject,
    demo: Environment,
    spec_texts: Texts,
    hardware: tuple[HardwareNode, ...],
    canonical: dict[str, object],
) -> None:
    texts = reshape(spec_texts, drawn(data))
    assert facts(foreign(demo, texts, hardware)) == canonical
    plan, layout = laid_out(texts, demo, hardware)
    check_layout(texts, plan, layout)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("pick", [0, 1, 2, 3])
def test_each_shape_family_alone(
    family: str,
    pick: int,
    demo: Environment,
    spec_texts: Texts,
    hardware: tuple[HardwareNode, ...],
    canonical: dict[str, object],
) -> None:
    texts = reshape(spec_texts, fixed({family: pick, "extra-fields": 0 if family == "extra-fields" else 1}))
    assert facts(foreign(demo, texts, hardware)) == canonical, family
    plan, layout = laid_out(texts, demo, hardware)
    check_layout(texts, plan, layout)


@pytest.mark.parametrize("family", ["list-or-mapping", "bare-or-object", "wrapper-or-none", "synonyms"])
@pytest.mark.parametrize("pick", [0, 1, 2])
def test_the_catalogs_network_tables_read_every_shape_alike(
    family: str, pick: int, spec_texts: Texts
) -> None:
    def network_rows(texts: Texts) -> dict[str, list[tuple[str, ...]]]:
        documents = [
            ("s", f"data/{rel}", t.encode()) for rel, t in texts.items() if rel.startswith("network/")
        ]
        tables = config_tables(documents)
        names = ("network_subnets", "network_routes", "network_policies", "dns_records", "network_links")
        rows = {
            n: sorted(tuple(str(v) for v in row.values()) for row in tables[n].to_pylist()) for n in names
        }
        rows["network_subnets"] = [row[:3] for row in rows["network_subnets"]]  # a bare CIDR says no more
        return rows

    canonical = network_rows(spec_texts)
    reshaped = reshape(spec_texts, fixed({family: pick, "extra-fields": 1, "optional-dropped": 0}))
    assert network_rows(reshaped) == canonical, family


@pytest.mark.parametrize("family", ["list-or-mapping", "bare-or-object", "wrapper-or-none", "synonyms"])
@pytest.mark.parametrize("pick", [0, 1, 2, 3])
def test_the_catalogs_configuration_tables_read_every_shape_alike(
    family: str, pick: int, spec_texts: Texts
) -> None:
    """Directors (addresses, storage paths, VMs and their networks), applications, services and
    volumes give the same rows whichever shape the generator wrote them in."""

    def rows(texts: Texts) -> dict[str, list[tuple[str, ...]]]:
        documents = [("s", f"data/{rel}", t.encode()) for rel, t in texts.items()]
        tables = config_tables(documents)
        return {
            n: sorted(tuple(str(v) for v in row.values()) for row in tables[n].to_pylist()) for n in TABLES
        }

    canonical = rows(spec_texts)
    assert all(canonical[n] for n in ("directors", "director_vms", "applications", "volumes"))
    reshaped = reshape(spec_texts, fixed({family: pick, "extra-fields": 1, "optional-dropped": 0}))
    assert rows(reshaped) == canonical, family
