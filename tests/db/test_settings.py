"""Settings precedence: --workspace argument > OMNI_RECOVERY_WORKSPACE > ./.omni-recovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_recovery.settings import DATABASE_URL_ENV, WORKSPACE_ENV, Settings, load_settings


def test_argument_beats_environment(tmp_path: Path) -> None:
    env = {WORKSPACE_ENV: str(tmp_path / "from-env")}
    settings = load_settings(tmp_path / "from-arg", environ=env)
    assert settings.workspace == (tmp_path / "from-arg").resolve()


def test_environment_beats_default(tmp_path: Path) -> None:
    settings = load_settings(environ={WORKSPACE_ENV: str(tmp_path / "from-env")})
    assert settings.workspace == (tmp_path / "from-env").resolve()


def test_default_is_dot_omni_recovery_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    settings = load_settings()
    assert settings.workspace == tmp_path.resolve() / ".omni-recovery"
    assert settings.database_url is None
    assert settings.embedded


def test_blank_values_count_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings("  ", environ={WORKSPACE_ENV: "", DATABASE_URL_ENV: "   "})
    assert settings.workspace == tmp_path.resolve() / ".omni-recovery"
    assert settings.database_url is None


def test_process_environment_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKSPACE_ENV, str(tmp_path / "ws"))
    monkeypatch.setenv(DATABASE_URL_ENV, "postgresql://u@db.example/omni")
    settings = load_settings()
    assert settings.workspace == (tmp_path / "ws").resolve()
    assert settings.database_url == "postgresql://u@db.example/omni"
    assert not settings.embedded


def test_relative_workspace_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings("rel/ws", environ={})
    assert settings.workspace.is_absolute()
    assert settings.workspace == tmp_path.resolve() / "rel" / "ws"


def test_sub_folders_and_ensure_folders(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "ws", environ={})
    assert not settings.workspace.exists()  # loading touches nothing
    assert settings.pgdata == settings.workspace / "postgres"
    assert settings.catalog == settings.workspace / "catalog"
    assert settings.dagster_home == settings.workspace / "dagster"
    assert settings.reports == settings.workspace / "reports"
    settings.ensure_folders()
    for folder in (settings.catalog, settings.dagster_home, settings.reports, settings.plans):
        assert folder.is_dir()
    assert not settings.pgdata.exists()


def test_repr_hides_the_database_url() -> None:
    settings = Settings(workspace=Path("/w"), database_url="postgresql://u:hunter2@db/omni")
    assert "hunter2" not in repr(settings)
    assert "external" in repr(settings)
