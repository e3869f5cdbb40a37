"""Whole sets another writer could make go through the whole flow and restore equal to their source.

Tier two of the foreign-set tests (tier one, the shapes in process: tests/transforms/
test_foreign_shapes.py, where hypothesis drives the same generator). Here each set's shapes are
picked at random from its seed (tests/foreign_shapes.py), tests/foreign_sets.py writes its images
with xorriso, and all are registered in one run; then each is validated deeply and stored, planned
onto a same-shaped inventory and executed (one database, one Dagster workspace for all),
then the restore is compared with its source: volume data byte for byte, nothing missing but the
old nodes' documents, every difference a rewritten document or regenerated key material, and no
restored document holding an address of an old subnet. OMNI_RECOVERY_NIGHTLY=1: ten times as many.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from omni_recovery.backup.writer import WriterOptions
from omni_recovery.db.connection import connect
from omni_recovery.envstate.demo import DemoOptions
from omni_recovery.envstate.folder import environment_from_folder
from omni_recovery.settings import load_settings
from omni_recovery.validate import store, validate
from pipelines.runner import QUIET_CONSOLE, register_isos
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.builders import same_shaped_nodes
from tests.demo_fixtures import signed_set, write_demo
from tests.foreign_sets import XORRISO, foreign_set
from tests.foreign_shapes import Texts, seeded
from tests.test_recovery import digests, execute, make_setup, restored_tree
from tests.transforms.test_environment_model_foreign import demo_texts, spec_only
from tests.transforms.test_foreign_shapes import SCALE

pytestmark = pytest.mark.skipif(XORRISO is None, reason="needs xorriso (apt-get install xorriso)")

IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?!\.?\d)")
SETS = 30 * SCALE
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


@dataclass(frozen=True)
class Generated:
    demo: DemoSet
    source: Path
    folder: Path


@pytest.fixture(scope="module")
def generated(
    base: DemoSet, texts: Texts, tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> dict[int, Generated]:
    """SETS sets in shapes picked from their seed, registered together in one run."""
    made: dict[int, Generated] = {}
    together = tmp_path_factory.mktemp("foreign-all")
    for seed in range(SETS):
        folder = tmp_path_factory.mktemp(f"foreign-{seed}")
        demo, source = foreign_set(base, texts, seeded(seed), folder, f"foreign-{seed:04d}")
        for iso in demo.output.glob("*.iso"):
            (together / iso.name).symlink_to(iso)
        made[seed] = Generated(demo, source, folder)
    settings = load_settings(tmp_path_factory.mktemp("foreign-ws"))
    registered = register_isos(
        str(together), replace(settings, database_url=database_url), log_level=QUIET_CONSOLE
    )
    assert sorted(registered.backup_set_ids) == [f"foreign-{seed:04d}" for seed in range(SETS)]
    return made


@pytest.mark.parametrize("seed", range(SETS))
def test_a_generated_set_validates_plans_and_restores_to_its_source(
    seed: int, generated: dict[int, Generated], base: DemoSet, database_url: str, workspace: Path
) -> None:
    made = generated[seed]
    report = validate(str(made.demo.output), made.demo.trusted, PASSPHRASE, deep=True)
    assert report.passed, report.to_text()
    with connect(database_url) as conn:
        store(conn, report)
    setup = make_setup(
        made.demo, made.folder / "restore", same_shaped_nodes(environment_from_folder(base.env))
    )
    execute(setup, workspace)
    gathered = restored_tree(setup.plan, made.folder / "gathered")
    old_subnets = [ipaddress.IPv4Network(s.old) for s in setup.plan.subnets]
    check_restore(made.source, gathered)
    assert not old_addresses_left(made.folder / "gathered", old_subnets)
