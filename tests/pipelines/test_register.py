"""register-isos end to end: real Dagster runs over a real demo set into a real PostgreSQL catalog.

The catalog is compared with what the writer wrote (each ISO's manifest and the system-core index,
read back with the format's own reader): every file, component and dependency once, extents that
point at the right bytes, re-registration idempotent, two sets side by side, and a foreign or
corrupt file refused by name with nothing half-loaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterEventType

from omni_recovery.backupset.reader import IsoReader, list_backup_set
from omni_recovery.cli import main
from omni_recovery.db.connection import connect
from omni_recovery.db.schema import init_database
from omni_recovery.errors import BackupSetError
from omni_recovery.register.catalog_sql import run_query
from omni_recovery.settings import DATABASE_URL_ENV, WORKSPACE_ENV, Settings
from pipelines.runner import RegisterSummary, dagster_instance, register_isos
from tests.catalog_fixtures import DemoSet, scratch_settings
from tests.checker.tamper import scattered_copy


@dataclass
class Registered:
    settings: Settings
    summary: RegisterSummary

    @property
    def url(self) -> str:
        """The catalog database the set was registered into."""
        url = self.settings.database_url
        assert url is not None
        return url


@pytest.fixture(scope="module")
def registered(
    demo_set: DemoSet, catalog_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registered]:
    # The workspace (Parquet catalog, Dagster's SQLite instance) on tmpfs when there is one.
    with scratch_settings(tmp_path_factory, "catalog", catalog_database_url) as settings:
        steps: Counter[str] = Counter()
        summary = register_isos(str(demo_set.output), settings, progress=lambda p, n: steps.update({p: n}))
        assert steps["ingest"] == len(demo_set.summary.isos) and steps["catalog"] > 0
        yield Registered(settings, summary)


def _written(demo_set: DemoSet) -> tuple[dict[tuple[str, str], object], object]:
    """Every manifest entry the writer wrote, by (iso, path), and the system-core index."""
    entries: dict[tuple[str, str], object] = {}
    index = None
    for member in list_backup_set(str(demo_set.output)):
        with IsoReader(member.url) as reader:
            for entry in reader.manifest.files:
                assert (reader.name, entry.path) not in entries
                entries[(reader.name, entry.path)] = entry
            if member.name.kind == "system-core":
                index = reader.index()
    return entries, index


def _pg(url: str, query: str, *args: object) -> list[tuple]:
    with connect(url) as conn:
        return conn.execute(query, args).fetchall()


def test_catalog_accounts_for_every_file_component_and_dependency(
    registered: Registered, demo_set: DemoSet
) -> None:
    url = registered.url
    entries, index = _written(demo_set)
    rows = _pg(
        url,
        "SELECT iso_name, path, type, size, sha256, component_id, encrypted, chunk_of "
        "FROM omni.files WHERE backup_set_id = 't1'",
    )
    assert len(rows) == len(entries) == registered.summary.files
    assert {(r[0], r[1]) for r in rows} == set(entries)
    for iso, path, kind, size, sha, component, encrypted, chunk_of in rows:
        entry = entries[(iso, path)]
        assert (kind, size, sha, component) == (entry.type, entry.size, entry.sha256, entry.component)  # type: ignore[attr-defined]
        assert encrypted == (entry.encryption is not None)  # type: ignore[attr-defined]
        assert chunk_of == (entry.chunk.chunk_of if entry.chunk else None)  # type: ignore[attr-defined]

    components = _pg(
        url, "SELECT component_id, kind, parent_id FROM omni.components WHERE backup_set_id = 't1'"
    )
    assert sorted(components) == sorted((c.component_id, c.kind, c.parent_id) for c in index.components)  # type: ignore[attr-defined]
    deps = _pg(
        url, "SELECT component_id, depends_on_id, strength FROM omni.dependencies WHERE backup_set_id = 't1'"
    )
    assert Counter(deps) == Counter((d.component_id, d.depends_on_id, d.strength) for d in index.dependencies)  # type: ignore[attr-defined]
    hardware = _pg(url, "SELECT node_id FROM omni.hardware WHERE backup_set_id = 't1'")
    assert sorted(h[0] for h in hardware) == sorted(h.node_id for h in index.hardware)  # type: ignore[attr-defined]
    isos = _pg(url, "SELECT iso_name, size_bytes, file_count FROM omni.isos WHERE backup_set_id = 't1'")
    assert sorted(i[0] for i in isos) == sorted(demo_set.summary.isos)
    assert sum(i[2] for i in isos) == len(entries)
    assert _pg(url, "SELECT iso_count FROM omni.backup_sets WHERE backup_set_id = 't1'") == [(len(isos),)]
    configs = _pg(url, "SELECT count(*) FROM omni.configurations WHERE backup_set_id = 't1'")[0][0]
    assert configs > 20

    # the Parquet catalog holds the same rows, for DuckDB
    base = str(registered.settings.catalog)
    assert run_query(base, "SELECT count(*), count(DISTINCT (iso_name, path)) FROM files")[1] == [
        (len(entries), len(entries))
    ]
    assert run_query(base, "SELECT count(*) FROM components")[1] == [(len(components),)]
    assert registered.summary.isos_by_kind["volume-data"] == sum(1 for i in isos if "_volume-data_" in i[0])


def test_extents_point_at_the_right_bytes(registered: Registered, demo_set: DemoSet) -> None:
    url = registered.url
    rows = _pg(
        url,
        "SELECT iso_name, path, extent_offset, size, sha256 FROM omni.files "
        "WHERE backup_set_id = 't1' AND type = 'file' ORDER BY iso_name, extent_offset",
    )
    checked = 0
    for iso_name, path, offset, size, sha in rows:
        with (demo_set.output / iso_name).open("rb") as iso:
            iso.seek(offset)
            data = iso.read(size)
        assert hashlib.sha256(data).hexdigest() == sha, (iso_name, path)
        checked += 1
    assert checked == len(rows) > 300


def test_sql_command_answers_questions(registered: Registered, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    ws = str(registered.settings.workspace)
    result = runner.invoke(
        main, ["sql", "SELECT kind, count(*) AS n FROM isos GROUP BY kind ORDER BY kind", "--workspace", ws]
    )
    assert result.exit_code == 0, result.output
    assert "volume-data" in result.output and "(6 rows)" in result.output
    csv = runner.invoke(
        main,
        [
            "sql",
            "SELECT iso_name FROM files WHERE path = 'data/network/dns.yaml'",
            "--workspace",
            ws,
            "--format",
            "csv",
        ],
    )
    assert csv.output.splitlines() == ["iso_name", "t1_network-configuration_001.iso"]
    js = runner.invoke(
        main, ["sql", "SELECT component_id FROM components LIMIT 2", "--workspace", ws, "--format", "json"]
    )
    assert js.exit_code == 0 and js.output.count('{"component_id": ') == 2
    bad = runner.invoke(main, ["sql", "SELECT nope FROM files", "--workspace", ws])
    assert bad.exit_code == 1 and "query failed" in bad.output


def test_register_again_through_the_cli_is_idempotent(
    registered: Registered, demo_set: DemoSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = registered.url
    tables = ("files", "components", "dependencies", "hardware", "isos", "backup_sets", "configurations")
    before = {t: _pg(url, f"SELECT count(*) FROM omni.{t}")[0][0] for t in tables}
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    monkeypatch.setenv(WORKSPACE_ENV, str(registered.settings.workspace))
    result = CliRunner().invoke(main, ["register-isos", "--path", str(demo_set.output), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "0 new" in result.output and f"{registered.summary.files} manifest entries" in result.output
    after = {t: _pg(url, f"SELECT count(*) FROM omni.{t}")[0][0] for t in tables}
    assert after == before
    instance = dagster_instance(registered.settings)
    assert sorted(instance.get_dynamic_partitions("isos")) == sorted(demo_set.summary.isos)


def test_two_sets_side_by_side(registered: Registered, second_set: Path) -> None:
    url = registered.url
    t1_files = _pg(url, "SELECT count(*) FROM omni.files WHERE backup_set_id = 't1'")[0][0]
    summary = register_isos(str(second_set), registered.settings)
    assert summary.backup_set_ids == ["c2"]
    counts = dict(_pg(url, "SELECT backup_set_id, count(*) FROM omni.files GROUP BY backup_set_id"))
    assert counts == {"t1": t1_files, "c2": summary.files}
    assert sorted(r[0] for r in _pg(url, "SELECT backup_set_id FROM omni.backup_sets")) == ["c2", "t1"]
    keys = run_query(str(registered.settings.catalog), "SELECT DISTINCT backup_set_id FROM files ORDER BY 1")[
        1
    ]
    assert keys == [("c2",), ("t1",)]


def _snapshot(url: str) -> dict[str, int]:
    return {t: _pg(url, f"SELECT count(*) FROM omni.{t}")[0][0] for t in ("files", "isos", "backup_sets")}


def test_a_foreign_file_is_refused_by_name_and_nothing_is_loaded(
    registered: Registered, demo_set: DemoSet, tmp_path: Path
) -> None:
    url = registered.url
    before = _snapshot(url)
    folder = tmp_path / "set"
    shutil.copytree(demo_set.output, folder)
    (folder / "notes.iso").write_text("not an ISO of a set")
    result = CliRunner().invoke(
        main, ["register-isos", "--path", str(folder), "--workspace", str(registered.settings.workspace)],
        env={DATABASE_URL_ENV: url},
    )  # fmt: skip
    assert result.exit_code == 1 and "notes.iso" in result.output
    assert _snapshot(url) == before


def test_a_corrupt_iso_is_refused_by_name_and_nothing_is_half_loaded(
    registered: Registered, demo_set: DemoSet, tmp_path: Path
) -> None:
    url = registered.url
    before = _snapshot(url)
    folder = tmp_path / "x3"
    folder.mkdir()
    for iso in sorted(demo_set.output.iterdir()):
        shutil.copy(iso, folder / iso.name.replace("t1_", "x3_"))
    instance = dagster_instance(registered.settings)
    partitions_before = set(instance.get_dynamic_partitions("isos"))
    with pytest.raises(BackupSetError) as caught:
        register_isos(str(folder), registered.settings)
    assert "x3_" in str(caught.value) and "foreign or renamed" in str(caught.value)
    assert _snapshot(url) == before
    assert set(dagster_instance(registered.settings).get_dynamic_partitions("isos")) == partitions_before

    # a damaged image (its manifest bytes overwritten) is refused the same way
    broken = tmp_path / "broken"
    shutil.copytree(demo_set.output, broken)
    target = broken / "t1_director-state_001.iso"
    with IsoReader(str(target)) as reader:
        offset = reader.listing["metadata/manifest.json"].offset
    with target.open("r+b") as out:
        out.seek(offset)
        out.write(b"#garbage#")
    with pytest.raises(BackupSetError) as damaged:
        register_isos(str(broken), registered.settings)
    assert "t1_director-state_001.iso" in str(damaged.value)
    assert _snapshot(url) == before


def test_the_command_line_says_a_damaged_image_in_one_line(
    registered: Registered, demo_set: DemoSet, tmp_path: Path
) -> None:
    folder = tmp_path / "cut"
    shutil.copytree(demo_set.output, folder)
    os.truncate(folder / "t1_volume-data_001.iso", 100_000)
    command = [sys.executable, "-m", "omni_recovery.cli", "register-isos", "--path", str(folder), "--quiet"]
    env = dict(
        os.environ, **{DATABASE_URL_ENV: registered.url, WORKSPACE_ENV: str(registered.settings.workspace)}
    )
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    said = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(said) == 1, done.stderr
    assert said[0].startswith("error: t1_volume-data_001.iso: image is truncated"), done.stderr


def test_the_catalog_holds_every_section_of_files_whose_sections_lie_out_of_order(
    demo_set: DemoSet, fresh_database_url: str, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    scattered = scattered_copy(demo_set.output, tmp_path / "set")
    init_database(fresh_database_url)
    with scratch_settings(tmp_path_factory, "scattered", fresh_database_url) as settings:
        register_isos(str(tmp_path / "set"), settings)
    rows = _pg(
        fresh_database_url, "SELECT iso_name, path, extents, sha256 FROM omni.files WHERE type = 'file'"
    )
    for iso_name, path, extents, sha in rows:
        digest = hashlib.sha256()
        with (tmp_path / "set" / iso_name).open("rb") as iso:
            for offset, length in extents:
                iso.seek(offset)
                digest.update(iso.read(length))
        assert digest.hexdigest() == sha, (iso_name, path, extents)
    assert sorted(path for _, path, extents, _ in rows if len(extents) == 2) == sorted(scattered)


def test_registration_runs_are_the_named_jobs_the_ui_lists(registered: Registered) -> None:
    """Each run register-isos made is a run of `ingest_isos` or `build_catalog` (not an anonymous
    asset job), with the ingest partitions in its range and the catalog assets materialised by it."""
    instance = dagster_instance(registered.settings)
    runs = {run_id: instance.get_run_by_id(run_id) for run_id in registered.summary.run_ids}
    assert all(run is not None for run in runs.values())
    names = [run.job_name for run in runs.values() if run is not None]
    assert names[-1] == "build_catalog" and set(names[:-1]) == {"ingest_isos"}, names
    events = instance.get_records_for_run(
        registered.summary.run_ids[-1], of_type=DagsterEventType.ASSET_MATERIALIZATION
    ).records
    materialised = {
        e.event_log_entry.dagster_event.asset_key for e in events if e.event_log_entry.dagster_event
    }
    assert {AssetKey("isos"), AssetKey("files"), AssetKey("configurations")} <= materialised
