"""The documents of the old environment, read once, by meaning, into a typed model.

`reader.environment_from_files(texts, components, dependencies)` is the one reader: planning and the
restore layout take their facts from it (`network`, `workloads`, `claims` and the tolerant helpers of
`sources` are its parts); `model` is what it returns. The catalog's configuration tables read each
document through the same parts (`facts` finds a Director's, VM's, node's, container's and volume's
facts; `document_items`, `first_of` and `text_of` the rest).
docs/backup-format.md lists the facts read per document and the shapes accepted.
"""

from transforms.documents.facts import (
    ADDRESS_KEYS,
    CPU_KEYS,
    DISK_KEYS,
    MEMORY_KEYS,
    RING_PEER_KEYS,
    VM_ID_KEYS,
    addresses,
    containers,
    disks,
    field_of,
    named_items,
    number,
    reservations,
    ring_peers,
    storage_paths,
    vm_items,
    vm_list_key,
    vm_network_list,
    vm_networks,
    volume_fields,
    volume_mounts,
)
from transforms.documents.model import (
    APP_VM_OVERHEAD_MIB,
    VM,
    VM_ROLES,
    Application,
    Container,
    Director,
    DnsRecord,
    Environment,
    Link,
    Network,
    Nic,
    Node,
    Orchestrator,
    Policy,
    Route,
    Service,
    Subnet,
    VmNetwork,
    Volume,
    app_vm_size,
)
from transforms.documents.network import subnet_of, subnets_in
from transforms.documents.reader import environment_from_files
from transforms.documents.sources import DEFAULT_GROUP, document_items, first_of
from transforms.documents.sources import _text as text_of
from transforms.documents.workloads import dependencies

__all__ = [
    "ADDRESS_KEYS",
    "APP_VM_OVERHEAD_MIB",
    "CPU_KEYS",
    "DEFAULT_GROUP",
    "DISK_KEYS",
    "MEMORY_KEYS",
    "RING_PEER_KEYS",
    "VM",
    "VM_ID_KEYS",
    "VM_ROLES",
    "Application",
    "Container",
    "Director",
    "DnsRecord",
    "Environment",
    "Link",
    "Network",
    "Nic",
    "Node",
    "Orchestrator",
    "Policy",
    "Route",
    "Service",
    "Subnet",
    "VmNetwork",
    "Volume",
    "addresses",
    "app_vm_size",
    "containers",
    "dependencies",
    "disks",
    "document_items",
    "environment_from_files",
    "field_of",
    "first_of",
    "named_items",
    "number",
    "reservations",
    "ring_peers",
    "storage_paths",
    "subnet_of",
    "subnets_in",
    "text_of",
    "vm_items",
    "vm_list_key",
    "vm_network_list",
    "vm_networks",
    "volume_fields",
    "volume_mounts",
]
