"""The catalog's configuration tables read each legal shape of a document to the same rows.

One named example per shape family (a list or a mapping keyed by name, a bare value or an object, a
wrapper or none, another field name for the same fact), each compared with the same facts written
the way this project's writer writes them, so a failure names the shape that broke.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from transforms.configs import config_tables

SUBNETS = {"subnets": {"management": {"cidr": "10.0.0.0/24"}, "storage": {"cidr": "10.0.16.0/24"}}}
OURS: dict[str, Any] = {
    "data/network/subnets.yaml": SUBNETS,
    "data/directors/dir-1/config.yaml": {
        "director_id": "dir-1",
        "addresses": {"management": "10.0.0.11", "storage": "10.0.16.11"},
        "storage_paths": {"data": "/srv/omni/data"},
        "reservations": {"cpu_cores": 2, "memory_mib": 4096},
        "ring_peers": ["dir-2"],
    },
    "data/directors/dir-1/state.json": {
        "vms": [
            {
                "vm_id": "vm-1",
                "name": "app-billing",
                "role": "app",
                "cpu": 2,
                "memory_mib": 2048,
                "disk_gib": 20,
                "networks": [{"subnet": "management", "ip": "10.0.0.21"}],
            }
        ]
    },
    "data/directors/dir-1/hardware.yaml": {
        "hostname": "node-a",
        "cpu_cores": 16,
        "memory_mib": 65536,
        "nics": [{"name": "eth0", "mac": "52:54:00:00:00:01"}],
    },
    "data/applications/billing/app.yaml": {
        "name": "billing",
        "vm": "vm-1",
        "containers": [{"name": "web", "image": "billing:1", "cpu": 1, "memory_mib": 512, "replicas": 2}],
        "volumes": [{"name": "data", "mount_path": "/var/lib/billing"}],
    },
    "data/services/auth/service.yaml": {"name": "auth", "vm": "vm-2", "category": "core"},
    "data/volumes/billing/data/volume.yaml": {
        "app": "billing",
        "name": "data",
        "size_gib": 10,
        "storage_class": "ssd",
        "mount_path": "/var/lib/billing",
    },
}
TABLES = (
    "directors",
    "director_vms",
    "director_hardware",
    "applications",
    "application_containers",
    "application_volumes",
    "services",
    "volumes",
)


def _rows(files: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    docs = []
    for path, doc in files.items():
        data = json.dumps(doc) if path.endswith(".json") else yaml.safe_dump(doc)
        docs.append(("s", path, data.encode()))
    tables = config_tables(docs)
    return {name: tables[name].to_pylist() for name in TABLES}


def _with(path: str, **changes: Any) -> dict[str, Any]:
    doc = {**OURS[path], **changes}
    return {**OURS, path: {k: v for k, v in doc.items() if v is not None}}


def _vm(**changes: Any) -> dict[str, Any]:
    vm = {**OURS["data/directors/dir-1/state.json"]["vms"][0], **changes}
    return {k: v for k, v in vm.items() if v is not None}


CONFIG, STATE, APP = (
    "data/directors/dir-1/config.yaml",
    "data/directors/dir-1/state.json",
    "data/applications/billing/app.yaml",
)
SHAPES: dict[str, dict[str, Any]] = {
    "director addresses as objects": _with(
        CONFIG,
        addresses=[{"subnet": "management", "ip": "10.0.0.11"}, {"name": "storage", "address": "10.0.16.11"}],
    ),
    "director addresses bare, named by their subnet": _with(CONFIG, addresses=["10.0.16.11", "10.0.0.11"]),
    "storage paths as objects": _with(CONFIG, storage_paths=[{"name": "data", "path": "/srv/omni/data"}]),
    "reservations under another name": _with(
        CONFIG, reservations=None, reserved={"cpu": 2, "memory_mib": 4096}
    ),
    "ring peers under another name": _with(CONFIG, ring_peers=None, peers=["dir-2"]),
    "VMs keyed by id": {**OURS, STATE: {"vms": {"vm-1": _vm(vm_id=None)}}},
    "VMs under another wrapper": {**OURS, STATE: {"instances": [_vm()]}},
    "VM fields under other names": {
        **OURS,
        STATE: {"vms": [_vm(cpu=None, vcpus=2, memory_mib=None, memory_mb=2048)]},
    },
    "VM networks bare": {**OURS, STATE: {"vms": [_vm(networks=["10.0.0.21"])]}},
    "VM networks keyed by subnet": {**OURS, STATE: {"vms": [_vm(networks={"management": "10.0.0.21"})]}},
    "VM networks under other field names": {
        **OURS,
        STATE: {"vms": [_vm(networks=None, interfaces=[{"network": "management", "address": "10.0.0.21"}])]},
    },
    "containers keyed by name": _with(
        APP, containers={"web": {"image": "billing:1", "cpu": 1, "memory_mib": 512, "replicas": 2}}
    ),
    "volumes keyed by name": _with(APP, volumes={"data": {"mount_path": "/var/lib/billing"}}),
    "volume mount paths keyed by name": _with(APP, volumes={"data": "/var/lib/billing"}),
    "VM under another field name": _with(APP, vm=None, vm_id="vm-1"),
    "NICs keyed by name": _with(
        "data/directors/dir-1/hardware.yaml", nics={"eth0": {"mac": "52:54:00:00:00:01"}}
    ),
    "volume fields under other names": _with(
        "data/volumes/billing/data/volume.yaml",
        storage_class=None,
        mount_path=None,
        **{"class": "ssd", "mount": "/var/lib/billing"},
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_shape_gives_the_rows_of_our_own(shape: str) -> None:
    assert _rows(SHAPES[shape]) == _rows(OURS), shape


def test_our_own_shape_fills_every_table() -> None:
    rows = _rows(OURS)
    assert all(rows[name] for name in TABLES)
    (director,) = rows["directors"]
    assert (director["management_address"], director["storage_address"]) == ("10.0.0.11", "10.0.16.11")
    (vm,) = rows["director_vms"]
    assert json.loads(vm["networks"]) == [{"subnet": "management", "ip": "10.0.0.21"}]
    assert [(v["name"], v["mount_path"]) for v in rows["application_volumes"]] == [
        ("data", "/var/lib/billing")
    ]
