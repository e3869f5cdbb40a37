"""Documents of odd shape or content in a validly signed set never crash a command.

Each case replaces one document of a copy of the demo set (re-signed, so the set is whole and
authentic) and drives the whole flow through the command line in process: register-isos,
validate-isos --deep, plan-generate, execute-plan, status. Every command succeeds or refuses with
exit 1, never with a Python traceback; a refusal is one line naming the ISO and the path of the
document (and, where the reader knows it, the place in it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_recovery.backupset.signing import load_signing_key
from omni_recovery.plan.generate import open_set
from tests.backupset.conftest import PASSPHRASE, DemoSet
from tests.builders import same_shaped_inventory
from tests.checker.tamper import copy_set, rebuild
from tests.conftest import PostgresForTests
from tests.test_hostile_content import invoke

CASES = {  # name: (the document's path ends so, its new content, what the refusal says, if any)
    "a malformed subnet": (
        "data/network/subnets.yaml",
        b"subnets:\n  management: {cidr: 10.0.0.0/33}\n  services: 10.0.8.0/22\n  storage: 10.0.16.0/24\n",
        "subnet management: '10.0.0.0/33'",
    ),
    "a subnet without a name": (
        "data/network/subnets.yaml",
        b"subnets:\n  - {name: management, cidr: 10.0.0.0/24}\n  - {cidr: 10.0.8.0/22}\n",
        "a subnet is malformed: the subnet 10.0.8.0/22 has no name (give it `name:`) at /subnets/1",
    ),
    "a subnet without its prefix length": (
        "data/network/subnets.yaml",
        b"subnets:\n  management: {cidr: 10.0.0.0}\n  services: 10.0.8.0/22\n  storage: 10.0.16.0/24\n",
        "subnet management: '10.0.0.0' is not a CIDR: it has no /prefix length at /subnets/management/cidr",
    ),
    "a state that is a list": ("data/directors/dir-1/state.json", b"[1, 2, 3]", "must be a mapping"),
    "a Director config of odd types": (
        "data/directors/dir-1/config.yaml",
        b"addresses: 7\nstorage_paths: 5\nring_peers: {a: 1}\nreservations: [1]\n",
        "ring peer(s) 1 have no node in the plan",
    ),
    "an application of odd types": (
        "app.yaml",
        b"containers: 5\nvolumes: {x: 1}\ndepends_on: 3\npriority: [1]\n",
        None,
    ),
    "DNS records of scalars": (
        "data/network/dns.yaml",
        b"zone: x\nrecords: {a: 1}\n",
        "records must be a list",
    ),
    "a document not in UTF-8": (
        "data/network/routes.yaml",
        b"routes: [{destination: \xff\xfe}]\n",
        "cannot be parsed",
    ),
    "a VM of odd types": (
        "data/directors/dir-1/state.json",
        b'{"vms": [{"vm_id": "v", "cpu": "two", "networks": 5}]}',
        "cpu is 'two', not a number",
    ),
}


def _holder(folder: Path, suffix: str) -> tuple[Path, str]:
    """(ISO file, path in it) of the first document whose path ends with `suffix`."""
    with open_set(str(folder)) as readers:
        for reader in readers:
            for entry in reader.manifest.files:
                if entry.path.endswith(suffix) and entry.path.startswith("data/"):
                    return folder / reader.name, entry.path
    raise AssertionError(f"no document {suffix} in the demo set")


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_document_never_crashes_a_command(
    case: str, demo_set: DemoSet, tmp_path: Path, postgres_server: PostgresForTests
) -> None:
    suffix, content, refusal = CASES[case]
    folder = copy_set(demo_set.output, tmp_path / "set")
    iso, path = _holder(folder, suffix)
    rebuild(iso, load_signing_key(demo_set.key_path), replace={path: content})
    workspace = ["--workspace", str(tmp_path / "ws")]
    passphrase = tmp_path / "passphrase"
    passphrase.write_bytes(PASSPHRASE + b"\n")
    plan = tmp_path / "plan.yaml"
    url = postgres_server.create_database("omni_hostile_doc")
    said = []
    try:
        said.append(invoke(["register-isos", "--path", str(folder), *workspace, "--quiet"], url))
        validate = ["validate-isos", "--path", str(folder), "--trusted-key", f"{demo_set.key_path}.pub"]
        said.append(invoke([*validate, "--deep", "--passphrase-file", str(passphrase), *workspace], url))
        inventory = same_shaped_inventory(demo_set.env, tmp_path)
        generate = [
            "plan-generate",
            "--path",
            str(folder),
            "--inventory",
            str(inventory),
            "--output",
            str(plan),
        ]
        said.append(invoke([*generate, "--no-store", *workspace], url))
        if plan.exists():
            execute = ["execute-plan", "--plan", str(plan), "--passphrase-file", str(passphrase)]
            said.append(invoke([*execute, *workspace], url))
        said.append(invoke(["status", *workspace], url))
    finally:
        postgres_server.drop_database(url)
    errors = [line for line in "\n".join(said).splitlines() if line.startswith("error:")]
    assert all(f"{iso.name}: {path}: " in line for line in errors), (case, errors)
    assert refusal is None or any(refusal in line for line in errors), (case, errors)
    assert "cannot be made:\n" not in "".join(said), "one problem is one line"
