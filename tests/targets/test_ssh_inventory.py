"""The inventory's ssh:// roots: host_key required and checked, identity_file optional, neither on
another kind of root; both kept through the YAML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from omni_recovery.adapt.inventory import (
    InventoryError,
    SshKeys,
    inventory_to_yaml,
    make_inventory,
    parse_inventory,
)
from tests.targets.sftp_servers import new_key, public_line

HOST_KEY = public_line(new_key())


def inventory_text(**node_fields: str) -> str:
    """A valid one-node inventory whose node has `node_fields` (its root, or fields beside it)."""
    own_root = "file:///srv/targets/n1"
    text = inventory_to_yaml(make_inventory([("n1", 8, 16384, 100)], root="file:///srv"))
    extra = "".join(f"  {key}: {value}\n" for key, value in node_fields.items() if key != "root")
    return text.replace(f"  root: {own_root}\n", f"  root: {node_fields.get('root', own_root)}\n{extra}")


@pytest.mark.parametrize("scheme", ["ssh", "sftp"])
def test_an_ssh_root_with_its_host_key_and_identity_file_parses_and_round_trips(scheme: str):
    url = f"{scheme}://omni@10.0.0.5:2222/srv/omni/n1"
    parsed = parse_inventory(inventory_text(root=url, host_key=HOST_KEY, identity_file="/keys/id"))
    assert parsed.nodes[0].root == url
    assert parsed.nodes[0].ssh == SshKeys(HOST_KEY, "/keys/id")
    assert parse_inventory(inventory_to_yaml(parsed)) == parsed


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"root": "ssh://omni@host/srv"}, "an ssh:// root needs host_key"),
        (
            {"root": "ssh://omni@host/srv", "host_key": "ssh-ed25519 AAAAnot-a-key"},
            "host_key is not a public key",
        ),
        ({"host_key": HOST_KEY}, "host_key is for ssh:// roots only"),
        ({"identity_file": "/keys/id"}, "identity_file is for ssh:// roots only"),
    ],
)
def test_a_missing_bad_or_misplaced_ssh_field_is_named_with_its_line(fields: dict[str, str], message: str):
    with pytest.raises(InventoryError, match=message) as caught:
        parse_inventory(inventory_text(**fields), source="inv.yaml")
    assert "inv.yaml:" in str(caught.value)


def test_the_readme_s_two_ssh_nodes_example_parses():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("#### Nodes and pools on other machines (SSH)", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    inventory = parse_inventory(example, source="README.md")
    assert [n.root.split("://")[0] for n in inventory.nodes] == ["ssh", "sftp"]
    assert all(n.ssh is not None for n in inventory.nodes)
    assert inventory.nodes[0].ssh and inventory.nodes[0].ssh.identity_file
    assert inventory.storage[0].ssh is not None
