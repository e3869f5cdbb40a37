"""A document the reader cannot use is refused in one line naming it and the place inside it.

Each case replaces one document of the tiny demo's spec-only texts with a shape a writer may pick
(a list or a mapping keyed by name, a wrapper or none, other field names) holding one fault, and
checks that the refusal names the document and the JSON pointer (RFC 6901) of the faulty value.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from omni_recovery.errors import EnvironmentStateError
from tests.transforms.test_environment_model_foreign import Texts, demo_texts, foreign, spec_only
from transforms.documents import Environment

GOOD_VM = {"vm_id": "good-1", "cpu": 2, "memory_mib": 1024}

CASES = {  # name: (document, its new content, the pointer the refusal names)
    "a list item missing its vm_id": (
        "directors/{did}/state.json",
        json.dumps({"vms": [GOOD_VM, {"name": "nameless", "cpu": 1}]}),
        "/vms/1/vm_id",
    ),
    "a wrong type in a VM keyed by id under another wrapper": (
        "directors/{did}/state.json",
        json.dumps({"instances": {"web-1": {"vcpus": "many"}}}),
        "/instances/web-1/vcpus",
    ),
    "a key that needs escaping": (
        "directors/{did}/state.json",
        json.dumps({"vms": {"a/b~c": {"memory_mb": [1]}}}),
        "/vms/a~1b~0c/memory_mb",
    ),
    "a bad CIDR in a keyed mapping under the wrapper": (
        "network/subnets.yaml",
        yaml.safe_dump({"subnets": {"management": {"cidr": "10.0.0.0/33"}}}),
        "/subnets/management/cidr",
    ),
    "a bad CIDR in a list without wrapper, another field name": (
        "network/subnets.yaml",
        yaml.safe_dump(
            [{"name": "services", "cidr": "10.0.8.0/22"}, {"name": "management", "network": "10.0.0.300/24"}]
        ),
        "/1/network",
    ),
    "a bad bare CIDR keyed by name": (
        "network/subnets.yaml",
        yaml.safe_dump({"management": "10.0.0.0/40"}),
        "/management",
    ),
    "a subnet in a list with a CIDR and no name": (
        "network/subnets.yaml",
        yaml.safe_dump({"subnets": [{"name": "management", "cidr": "10.0.0.0/24"}, {"cidr": "10.0.8.0/22"}]}),
        "/subnets/1",
    ),
    "a CIDR without its prefix length": (
        "network/subnets.yaml",
        yaml.safe_dump({"subnets": {"management": {"network": "10.0.0.0"}}}),
        "/subnets/management/network",
    ),
    "a bare CIDR without its prefix length keyed by name": (
        "network/subnets.yaml",
        yaml.safe_dump({"management": "10.0.0.0"}),
        "/management",
    ),
    "a wrong type in a disk keyed by device": (
        "directors/{did}/hardware.yaml",
        yaml.safe_dump({"hostname": "h1", "cpu_cores": 8, "disks": {"sda": {"size_gib": "big"}}}),
        "/disks/sda/size_gib",
    ),
    "a wrong type in a Director's reservations under another name": (
        "directors/{did}/config.yaml",
        yaml.safe_dump({"ring_id": "r1", "reserved": {"cpus": [2]}}),
        "/reserved/cpus",
    ),
    "a wrong type in a container keyed by name": (
        "applications/{app}/app.yaml",
        yaml.safe_dump({"name": "{app}", "containers": {"web": {"replicas": "several"}}}),
        "/containers/web/replicas",
    ),
    "a wrong size of a volume under another field name": (
        "volumes/{vol}/volume.yaml",
        yaml.safe_dump({"capacity_gib": "huge"}),
        "/capacity_gib",
    ),
}


@pytest.fixture(scope="module")
def spec_texts(demo_root: Path) -> Texts:
    return spec_only(demo_texts(demo_root))


@pytest.mark.parametrize("case", list(CASES))
def test_a_refusal_names_the_document_and_the_place_in_it(
    case: str, demo: Environment, spec_texts: Texts
) -> None:
    template, content, pointer = CASES[case]
    volume = demo.volumes[0]
    names = {"did": demo.directors[0].director_id, "app": volume.app, "vol": f"{volume.app}/{volume.name}"}
    rel = template.format(**names)
    assert rel in spec_texts, rel
    texts = {**spec_texts, rel: content.replace("{app}", volume.app)}
    with pytest.raises(EnvironmentStateError) as refused:
        foreign(demo, texts)
    message = str(refused.value)
    assert message.startswith(f"{rel}: malformed (") and message.endswith(f") at {pointer}"), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("subnets", "reason"),
    [
        ([{"cidr": "10.0.8.0/22"}], "the subnet 10.0.8.0/22 has no name (give it `name:`)"),
        (["10.0.8.0/22"], "the subnet 10.0.8.0/22 has no name (give it `name:`)"),
        ({"management": "10.0.0.0"}, "subnet management: '10.0.0.0' is not a CIDR: it has no /prefix length"),
    ],
    ids=["no name", "a bare string in a list", "no prefix length"],
)
def test_a_subnet_is_refused_rather_than_skipped_saying_what_is_wrong(
    subnets: object, reason: str, demo: Environment, spec_texts: Texts
) -> None:
    texts = {**spec_texts, "network/subnets.yaml": yaml.safe_dump(subnets)}
    with pytest.raises(EnvironmentStateError, match=re.escape(reason)):
        foreign(demo, texts)
