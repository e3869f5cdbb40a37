"""The documents of the old environment, read once, by meaning, into a typed model.

`reader.environment_from_files(texts, components, dependencies)` is the one reader: planning, the
restore layout and the catalog's network tables take their facts from it (`network`, `workloads`,
`claims` and the tolerant helpers of `sources` are its parts); `model` is what it returns.
docs/backup-format.md lists the facts read per document and the shapes accepted.
"""

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
from transforms.documents.network import subnet_of
from transforms.documents.reader import environment_from_files
from transforms.documents.sources import DEFAULT_GROUP, document_items, first_of
from transforms.documents.workloads import dependencies

__all__ = [
    "APP_VM_OVERHEAD_MIB",
    "DEFAULT_GROUP",
    "VM",
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
    "app_vm_size",
    "dependencies",
    "document_items",
    "environment_from_files",
    "first_of",
    "subnet_of",
]
