"""place(), env_path() and walk_environment() over hand-made folders and a tiny demo environment."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from omni_recovery.backupset.layout import (
    APPLICATION_DEFINITION,
    DIRECTOR_STATE,
    NETWORK_CONFIGURATION,
    ORCHESTRATOR_STATE,
    SYSTEM_CORE,
    VOLUME_DATA,
    check_relative_path,
)
from omni_recovery.envstate.demo import DemoOptions
from omni_recovery.envstate.model import (
    SENSITIVE_PATTERNS,
    Placement,
    env_path,
    is_sensitive,
    place,
    walk_environment,
)
from omni_recovery.errors import EnvironmentStateError, RecoveryError
from tests.demo_fixtures import write_demo


@pytest.fixture(scope="module")
def tiny_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo(tmp_path_factory, "model", DemoOptions(volume_scale="tiny", seed=7))


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("environment.yaml", Placement(SYSTEM_CORE, "data/system/environment.yaml", "system:core", False)),
        (
            "recovery/recovery_metadata.yaml",
            Placement(SYSTEM_CORE, "data/recovery/recovery_metadata.yaml", "system:core", False),
        ),
        ("keys/ca.crt", Placement(SYSTEM_CORE, "data/keys/ca.crt", "system:core", False)),
        ("keys/ca.key", Placement(SYSTEM_CORE, "data/keys/ca.key.enc", "system:core", True)),
        (
            "keys/service-accounts.key",
            Placement(SYSTEM_CORE, "data/keys/service-accounts.key.enc", "system:core", True),
        ),
        ("nodes/n1.yaml", Placement(SYSTEM_CORE, "data/system/nodes/n1.yaml", "system:core", False)),
        (
            "directors/dir-1/state.json",
            Placement(DIRECTOR_STATE, "data/directors/dir-1/state.json", "director:dir-1", False),
        ),
        (
            "orchestrators/o1/db/users.jsonl",
            Placement(ORCHESTRATOR_STATE, "data/orchestrators/o1/db/users.jsonl", "orchestrator:o1", True),
        ),
        (
            "orchestrators/o1/db/roles.jsonl",
            Placement(ORCHESTRATOR_STATE, "data/orchestrators/o1/db/roles.jsonl", "orchestrator:o1", False),
        ),
        (
            "applications/billing/app.yaml",
            Placement(
                APPLICATION_DEFINITION, "data/applications/billing/app.yaml", "application:billing", False
            ),
        ),
        (
            "applications/billing/secrets.json",
            Placement(
                APPLICATION_DEFINITION, "data/applications/billing/secrets.json", "application:billing", True
            ),
        ),
        (
            "services/auth/service.yaml",
            Placement(APPLICATION_DEFINITION, "data/services/auth/service.yaml", "service:auth", False),
        ),
        (
            "volumes/billing/pgdata/volume.yaml",
            Placement(VOLUME_DATA, "data/volumes/billing/pgdata/volume.yaml", "volume:billing/pgdata", False),
        ),
        (
            "volumes/billing/pgdata/files/base/1/1259",
            Placement(
                VOLUME_DATA, "data/volumes/billing/pgdata/files/base/1/1259", "volume:billing/pgdata", False
            ),
        ),
        (
            "network/dns.yaml",
            Placement(NETWORK_CONFIGURATION, "data/network/dns.yaml", "network:config", False),
        ),
    ],
)
def test_place_and_back(relpath: str, expected: Placement) -> None:
    assert place(relpath) == expected
    assert env_path(expected.iso_path) == relpath


@pytest.mark.parametrize(
    "relpath",
    [
        "README.md",
        "keys/ca.pem",
        "keys/data-key.json",
        "keys/ca.key.enc",
        "keys/sub/ca.key",
        "directors/dir-1",
        "volumes/app/vol",
        "recovery",
        "../environment.yaml",
        "/environment.yaml",
        "network//dns.yaml",
        "network/./dns.yaml",
        "network\\dns.yaml",
        "",
    ],
)
def test_place_refuses_paths_outside_the_shape(relpath: str) -> None:
    with pytest.raises(EnvironmentStateError) as info:
        place(relpath)
    assert repr(relpath) in str(info.value) or relpath in str(info.value)
    assert isinstance(info.value, RecoveryError)


@pytest.mark.parametrize(
    "iso_path",
    [
        "data/keys/data-key.json",
        "data/keys/ca.key",  # a private key is only ever stored sealed
        "data/nodes/n1.yaml",  # would stand for data/system/nodes/n1.yaml
        "data/environment.yaml",
        "metadata/manifest.json",
        "recovery.log",
        "data/../keys/ca.crt",
    ],
)
def test_env_path_refuses_paths_no_environment_file_is_stored_at(iso_path: str) -> None:
    with pytest.raises(EnvironmentStateError, match=r"data|path|manifest|recovery"):
        env_path(iso_path)


@pytest.mark.parametrize(
    ("iso_path", "relpath"),
    [
        ("data/system/ntp.yaml", "system/ntp.yaml"),
        ("data/keys/old-ca.enc", "keys/old-ca.enc"),
        ("data/volumes/app/vol", "volumes/app/vol"),  # a folder entry
        ("data/network", "network"),
        ("data/directors/d1/notes/history.txt", "directors/d1/notes/history.txt"),
    ],
)
def test_env_path_maps_another_writers_paths_below_data(iso_path: str, relpath: str) -> None:
    assert env_path(iso_path) == relpath


def test_sensitive_patterns_match_segment_by_segment() -> None:
    assert SENSITIVE_PATTERNS == (
        "keys/*.key",
        "applications/*/secrets.json",
        "orchestrators/*/db/users.jsonl",
    )
    assert is_sensitive("applications/billing/secrets.json")
    assert not is_sensitive("applications/billing/x/secrets.json")
    assert not is_sensitive("volumes/billing/secrets.json")
    assert is_sensitive("orchestrators/o/db/users.jsonl")
    assert not is_sensitive("orchestrators/o/db/users.jsonl.bak")


def test_round_trip_over_every_file_of_a_tiny_demo(tiny_env: Path) -> None:
    entries = list(walk_environment(tiny_env))
    assert len(entries) > 300
    iso_paths = set()
    for entry in entries:
        placement = entry.placement
        assert placement == place(entry.relpath)
        assert env_path(placement.iso_path) == entry.relpath
        check_relative_path(placement.iso_path)
        assert placement.iso_path.startswith("data/")
        iso_paths.add(placement.iso_path)
    assert len(iso_paths) == len(entries)
    kinds = {e.placement.iso_kind for e in entries}
    assert kinds == {
        SYSTEM_CORE,
        DIRECTOR_STATE,
        ORCHESTRATOR_STATE,
        VOLUME_DATA,
        APPLICATION_DEFINITION,
        NETWORK_CONFIGURATION,
    }
    sensitive = {e.relpath for e in entries if e.placement.sensitive}
    assert {"keys/ca.key", "keys/service-accounts.key"} <= sensitive
    assert all(p.startswith(("keys/", "applications/", "orchestrators/")) for p in sensitive), sensitive
    assert not any(e.placement.sensitive for e in entries if e.relpath == "keys/ca.crt")


def test_walk_is_sorted_and_typed(tiny_env: Path) -> None:
    entries = list(walk_environment(tiny_env))
    keys = [e.relpath + "/" if e.type == "dir" else e.relpath for e in entries]
    assert keys == sorted(keys)
    assert [e.relpath for e in entries if e.type != "dir"] == sorted(
        e.relpath for e in entries if e.type != "dir"
    )
    for entry in entries:
        assert entry.abspath == tiny_env / entry.relpath
        if entry.type == "dir":
            assert entry.relpath.startswith("volumes/") and entry.relpath.split("/")[3] == "files"
            assert len(entry.relpath.split("/")) >= 5
            assert entry.size == 0 and entry.target is None
        elif entry.type == "symlink":
            assert entry.target and not entry.target.startswith("/")
            assert entry.size == 0
        else:
            assert entry.type == "file"
            assert entry.size == (tiny_env / entry.relpath).stat().st_size
            assert entry.target is None
    # empty PostgreSQL folders are reported so they survive a backup
    dirs = {e.relpath for e in entries if e.type == "dir"}
    assert "volumes/billing/pgdata/files/pg_tblspc" in dirs
    assert not any(any((tiny_env / d).iterdir()) for d in dirs if d.endswith("/pg_tblspc"))
    # nothing is listed through a symlinked folder
    links = [e.relpath for e in entries if e.type == "symlink"]
    assert links
    assert not any(e.relpath.startswith(link + "/") for link in links for e in entries)


def test_walk_is_lazy(tiny_env: Path) -> None:
    walker = walk_environment(tiny_env)
    first = next(walker)
    assert first.relpath.startswith("applications/")


def _minimal(root: Path) -> Path:
    (root / "volumes/app/vol/files/sub").mkdir(parents=True)
    (root / "volumes/app/vol/files/empty").mkdir()
    (root / "volumes/app/vol/volume.yaml").write_text("name: vol\n")
    (root / "volumes/app/vol/files/sub/data.txt").write_text("hello\n")
    (root / "environment.yaml").write_text("name: x\n")
    return root


def test_walk_emits_empty_volume_folders(tmp_path: Path) -> None:
    root = _minimal(tmp_path)
    os.symlink("sub/data.txt", root / "volumes/app/vol/files/link")
    os.symlink("sub", root / "volumes/app/vol/files/sublink")
    entries = {e.relpath: e for e in walk_environment(root)}
    assert entries["volumes/app/vol/files/empty"].type == "dir"
    assert entries["volumes/app/vol/files/sub"].type == "dir"
    assert entries["volumes/app/vol/files/link"].type == "symlink"
    assert entries["volumes/app/vol/files/link"].target == "sub/data.txt"
    assert entries["volumes/app/vol/files/sublink"].type == "symlink"
    assert entries["volumes/app/vol/files/sub/data.txt"].size == 6
    assert "volumes/app/vol/files" not in entries
    assert "volumes/app" not in entries
    assert not any(p.startswith("volumes/app/vol/files/sublink/") for p in entries)


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("volumes/app/vol/files/escape", "../volume.yaml"),
        ("volumes/app/vol/files/sub/escape", "../../../other/files/x"),
        ("volumes/app/vol/files/abs", "/etc/passwd"),
        ("volumes/app/vol/files/root", ".."),
        ("applications/app/link", "app.yaml"),
        ("volumes/app/vol/link", "files/sub"),
    ],
)
def test_walk_refuses_symlinks_that_leave_their_volume(tmp_path: Path, link: str, target: str) -> None:
    root = _minimal(tmp_path)
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, root / link)
    with pytest.raises(EnvironmentStateError, match=re.escape(link)):
        list(walk_environment(root))


def test_walk_refuses_a_symlink_that_escapes_through_another_symlink(tmp_path: Path) -> None:
    root = _minimal(tmp_path)
    files = root / "volumes/app/vol/files"
    os.symlink(".", files / "here")  # fine on its own
    os.symlink("here/../outside", files / "bent")  # looks inside, resolves to volumes/app/vol/outside
    with pytest.raises(EnvironmentStateError, match="volumes/app/vol/files/bent"):
        list(walk_environment(root))


def test_walk_refuses_unknown_entries(tmp_path: Path) -> None:
    root = _minimal(tmp_path)
    (root / "notes.txt").write_text("x")
    with pytest.raises(EnvironmentStateError, match=r"notes\.txt"):
        list(walk_environment(root))


def test_walk_refuses_unknown_top_level_folder_even_when_empty(tmp_path: Path) -> None:
    root = _minimal(tmp_path)
    (root / "lost+found").mkdir()
    with pytest.raises(EnvironmentStateError, match=r"lost\+found"):
        list(walk_environment(root))


def test_walk_refuses_a_fifo(tmp_path: Path) -> None:
    root = _minimal(tmp_path)
    os.mkfifo(root / "volumes/app/vol/files/pipe")
    with pytest.raises(EnvironmentStateError, match="volumes/app/vol/files/pipe"):
        list(walk_environment(root))


def test_walk_refuses_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentStateError, match="no such directory"):
        list(walk_environment(tmp_path / "absent"))
