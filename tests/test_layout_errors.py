"""A problem the restore layout finds in a set's document names the ISO and the path inside it.

The layout knows documents by their environment path; execute-plan hands it the set's documents as
`read_set_environment` reads them (knowing which ISO holds each), and the layout's error names that
ISO and path, as every other error about a set's content does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from omni_recovery.adapt.inventory import load_inventory
from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.plan.generate import generate, open_set, read_set_environment
from tests.backupset.conftest import DemoSet
from tests.builders import same_shaped_inventory
from tests.checker.tamper import copy_set, rebuild
from transforms.adapt.changes import LayoutError
from transforms.target_layout import target_layout


def _director_config(folder: Path) -> tuple[Path, str, dict[str, Any]]:
    """(ISO file, path in it, document) of the first Director's config.yaml in the set at `folder`."""
    with open_set(str(folder)) as readers:
        for reader in readers:
            for entry in reader.manifest.files:
                if entry.path.startswith("data/directors/") and entry.path.endswith("/config.yaml"):
                    doc = yaml.safe_load(reader.verified_bytes(entry.path))
                    return folder / reader.name, entry.path, doc
    raise AssertionError("the demo set has a Director")


def test_a_layout_error_names_the_iso_and_the_path_in_it(demo_set: DemoSet, tmp_path: Path) -> None:
    folder = copy_set(demo_set.output, tmp_path / "set")
    iso, path, doc = _director_config(folder)
    doc["ring_peers"] = [*(doc.get("ring_peers") or []), "dir-nowhere"]
    rebuild(iso, load_signing_key(demo_set.key_path), replace={path: yaml.safe_dump(doc).encode()})
    inventory = same_shaped_inventory(demo_set.env, tmp_path)
    plan, _ = generate(str(folder), inventory, "basic")
    with open_set(str(folder)) as readers:
        source = read_set_environment(readers)
    with pytest.raises(LayoutError) as caught:  # as execute-plan makes the layout
        target_layout(
            source.environment, source.documents, plan, load_inventory(inventory), env_files=source.entries
        )
    (problem,) = caught.value.problems
    assert problem == f"{iso.name}: {path}: ring peer(s) dir-nowhere have no node in the plan"
