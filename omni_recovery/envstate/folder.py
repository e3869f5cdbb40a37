"""The old environment's model read from an environment state folder (tests, the demo, benchmarks).

`environment_from_folder(root)` reads the texts of the folder's YAML and JSON documents (outside the
volume file trees) and its topology (`read_topology`: components, dependencies, hardware, every
reference checked) and hands them to the pure reader, `transforms.documents.environment_from_files`,
the same one the catalog path uses with a set's documents. A file that cannot be read, or a malformed
one, raises EnvironmentStateError naming it.
"""

from __future__ import annotations

from pathlib import Path

from omni_recovery.envstate.topology import read_topology
from omni_recovery.errors import EnvironmentStateError
from transforms.documents import Environment, environment_from_files

DOCUMENT_SUFFIXES = (".yaml", ".yml", ".json")


def environment_from_folder(root: Path) -> Environment:
    """The model of the environment state folder at `root` (see docs/environment-state.md)."""
    root = Path(root)
    index = read_topology(root)
    return environment_from_files(
        folder_documents(root),
        tuple(index.components),
        tuple(index.dependencies),
        root.name,
        tuple(index.hardware),
    )


def folder_documents(root: Path) -> dict[str, str]:
    """Environment path → text of every YAML or JSON document outside the volume file trees."""
    texts = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")
        in_volume_files = parts[0] == "volumes" and len(parts) > 3 and parts[3] == "files"
        if in_volume_files or path.is_symlink() or not path.is_file() or path.suffix not in DOCUMENT_SUFFIXES:
            continue
        try:
            texts[rel] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EnvironmentStateError(f"{rel}: cannot be read: {exc}") from exc
    return texts
