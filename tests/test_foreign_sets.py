"""Whole sets another writer could make go through the whole flow and restore equal to their source.

Tier two of the foreign-set tests (tier one, the shapes in process: tests/transforms/
test_foreign_shapes.py). Hypothesis drives the same generator here: each example draws a set's
shapes (tests/foreign_shapes.py), tests/foreign_sets.py writes its images with xorriso, and the set
is registered, validated deeply and stored, planned onto a same-shaped inventory and executed (one
database, one Dagster workspace for all); then the restore is compared with its source: volume data
byte for byte, nothing missing but the old nodes' documents, every difference a rewritten document
or regenerated key material, and no restored document holding an address of an old subnet.
The 30 examples are derandomized (the same sets every run, so it cannot flake); OMNI_RECOVERY_NIGHTLY=1
runs ten times as many, drawn afresh.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from omni_recovery.backup.writer import WriterOptions
from omni_recovery.db.connection import connect
from omni_recovery.envstate.demo import DemoOptions
from omni_recovery.envstate.folder import environment_from_folder
from omni_recovery.settings import Settings, load_settings
from omni_recovery.validate import store, validate
from pipelines.runner import QUIET_CONSOLE, register_isos
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.builders import same_shaped_nodes
from tests.demo_fixtures import signed_set, write_demo
from tests.foreign_sets import XORRISO, foreign_set
from tests.foreign_shapes import Texts
from tests.test_recovery import digests, execute, make_setup, restored_tree
from tests.transforms.test_environment_model_foreign import demo_texts, spec_only
from tests.transforms.test_foreign_shapes import SCALE, drawn

pytestmark = pytest.mark.skipif(XORRISO is None, reason="needs xorriso (apt-get install xorriso)")

IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\.?\d)")
SETS = 30 * SCALE  # about 6 s a set on an idle machine: three minutes in one test worker
SMALL = DemoOptions(nodes=3, directors=2, orchestrators=1, applications=2, volume_scale="tiny", seed=11)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> DemoSet:
    env = write_demo(tmp_path_factory, "foreign-env", SMALL)
    return signed_set(env, tmp_path_factory.mktemp("foreign-base"), _options())


def _options() -> WriterOptions:
    return WriterOptions(backup_set_id="foreign-20261207t0200z")


@pytest.fixture(scope="module")
def texts(base: DemoSet) -> Texts:
    own = demo_texts(base.env)
    return {**spec_only(own), **{rel: t for rel, t in own.items() if rel.startswith("nodes/")}}


@pytest.fixture
def workspace(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OMNI_RECOVERY_DATABASE_URL", database_url)
    return tmp_path / "ws"


def check_restore(source: Path, restored: dict[str, str]) -> None:
    wanted = digests(source)
    volumes = [p for p in wanted if p.startswith("volumes/") and "/files/" in p]
    assert volumes and all(restored.get(p) == wanted[p] for p in volumes), "volume data byte for byte"
    missing = set(wanted) - set(restored)
    assert all(p.startswith("nodes/") for p in missing), missing
    differing = {p for p in set(wanted) & set(restored) if wanted[p] != restored[p]}
    documents = {p for p in differing if p.endswith((".yaml", ".json")) and "/db/" not in p}
    assert differing - documents <= {p for p in differing if p.startswith("keys/")}, differing - documents


def old_addresses_left(root: Path, old_subnets: list[ipaddress.IPv4Network]) -> list[str]:
    left = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if (
            not path.is_file()
            or path.is_symlink()
            or not rel.endswith((".yaml", ".json"))
            or "/files/" in rel
        ):
            continue
        if "/db/" in rel:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found = [a for a in IPV4.findall(text) if any(ipaddress.ip_address(a) in n for n in old_subnets)]
        left += [f"{rel}: {a}" for a in found]
    return left


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Settings:
    """The Dagster workspace every generated set is registered into."""
    return replace(load_settings(tmp_path_factory.mktemp("foreign-ws")), database_url=database_url)


_numbers = itertools.count()


@settings(
    max_examples=SETS,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=not SCALE > 1,
    phases=[Phase.explicit, Phase.generate],  # shrinking a whole recovery takes minutes
    print_blob=False,
)
@given(data=st.data())
def test_a_generated_set_registers_validates_plans_and_restores_to_its_source(
    data: st.DataObject,
    base: DemoSet,
    texts: Texts,
    registry: Settings,
    database_url: str,
    workspace: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    set_id = f"foreign-{next(_numbers):04d}"
    folder = tmp_path_factory.mktemp(set_id)
    demo, source = foreign_set(base, texts, drawn(data), folder, set_id)
    registered = register_isos(str(demo.output), registry, log_level=QUIET_CONSOLE)
    assert list(registered.backup_set_ids) == [set_id]
    report = validate(str(demo.output), demo.trusted, PASSPHRASE, deep=True)
    assert report.passed, report.to_text()
    with connect(database_url) as conn:
        store(conn, report)
    setup = make_setup(demo, folder / "restore", same_shaped_nodes(environment_from_folder(base.env)))
    execute(setup, workspace)
    gathered = restored_tree(setup.plan, folder / "gathered")
    old_subnets = [ipaddress.IPv4Network(s.old) for s in setup.plan.subnets]
    check_restore(source, gathered)
    assert not old_addresses_left(folder / "gathered", old_subnets)
