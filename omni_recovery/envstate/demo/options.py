"""What the demo generator is asked for (DemoOptions), what it reports (DemoSummary) and its scales."""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from omni_recovery.errors import EnvironmentStateError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

VOLUME_SCALES: tuple[str, ...] = ("tiny", "small", "medium", "large")
OMNICLOUD_VERSION = "4.2.1"
CORE_SERVICES: tuple[str, ...] = (
    "storage",
    "auth",
    "monitoring",
    "logging",
    "network-management",
    "dns",
    "api-gateway",
)
DEFAULT_LARGE_BIG_FILE = int(1.1 * GiB)
BLOCK_SIZE = MiB

MAX_NODES = 200
MAX_DIRECTORS = 32
MAX_ORCHESTRATORS = 32
MAX_APPLICATIONS = 2000  # 10 a node at MAX_NODES
MAX_BIG_FILE = 64 * GiB
MAX_VOLUMES_PER_NODE = 100
_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")

MANAGEMENT = IPv4Network("10.0.0.0/24")
SERVICES = IPv4Network("10.0.8.0/22")
# The services subnet of a demo whose VMs do not fit in SERVICES (about 1,000 applications or more);
# smaller demos keep SERVICES, and so their addresses.
WIDE_SERVICES = IPv4Network("10.0.32.0/19")
FIRST_SERVICE_HOST = 10  # the VMs' addresses start at this host number of the services subnet
STORAGE = IPv4Network("10.0.16.0/24")


class DemoOptionsError(EnvironmentStateError, ValueError):
    """The demo options are out of range or contradict each other."""


@dataclass(frozen=True)
class DemoOptions:
    """What to generate. `big_file_bytes`: size of one extra big streamed file (default: 1.1 GiB for
    "large", none for the other scales), so a backup's chunk size can be set below it. `database`: the
    last application is billing-db, whose volume is a real PostgreSQL data folder (database_volume;
    not byte-identical between runs). `volumes_per_node`: about that many volumes a node in all, the
    applications given extra blob volumes to reach it (default: the catalog's one to three each)."""

    nodes: int = 5
    directors: int = 3
    orchestrators: int = 3
    applications: int = 12
    volume_scale: str = "small"
    seed: int = 42
    name: str = "demo"
    big_file_bytes: int | None = None
    database: bool = False
    volumes_per_node: int | None = None

    def validate(self) -> None:
        """Raise DemoOptionsError with a clear message when an option is out of range."""

        def whole(name: str, value: object, low: int, high: int) -> None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise DemoOptionsError(f"demo option {name} must be a whole number, got {value!r}")
            if not low <= value <= high:
                raise DemoOptionsError(f"demo option {name}={value} must be between {low} and {high}")

        whole("nodes", self.nodes, 1, MAX_NODES)
        whole("directors", self.directors, 1, MAX_DIRECTORS)
        whole("orchestrators", self.orchestrators, 1, MAX_ORCHESTRATORS)
        whole("applications", self.applications, 1, MAX_APPLICATIONS)
        whole("seed", self.seed, -(2**63), 2**63 - 1)
        if self.directors > self.nodes:
            raise DemoOptionsError(
                f"demo option directors={self.directors} must not exceed nodes={self.nodes}: "
                "every Director runs on its own node"
            )
        if self.volume_scale not in VOLUME_SCALES:
            raise DemoOptionsError(
                f"demo option volume_scale={self.volume_scale!r} must be one of {', '.join(VOLUME_SCALES)}"
            )
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise DemoOptionsError(
                f"demo option name={self.name!r} must be a DNS label: a lowercase letter, then up to 30 "
                "lowercase letters, digits or '-'"
            )
        if self.big_file_bytes is not None:
            whole("big_file_bytes", self.big_file_bytes, 1, MAX_BIG_FILE)
        if self.volumes_per_node is not None:
            whole("volumes_per_node", self.volumes_per_node, 1, MAX_VOLUMES_PER_NODE)
        if not isinstance(self.database, bool):
            raise DemoOptionsError(f"demo option database must be true or false, got {self.database!r}")


@dataclass(frozen=True)
class DemoSummary:
    """What `write_demo_environment` wrote. Byte totals count regular files only."""

    root: Path
    name: str
    seed: int
    volume_scale: str
    nodes: int
    directors: int
    orchestrators: int
    services: int
    applications: int
    volumes: int
    vms: int
    files: int
    dirs: int
    symlinks: int
    total_bytes: int
    volume_bytes: int
    largest_file_bytes: int

    def __str__(self) -> str:
        return (
            f"{self.nodes} nodes, {self.directors} directors, {self.orchestrators} orchestrators, "
            f"{self.services} core services, {self.applications} applications, {self.volumes} volumes; "
            f"{self.files} files ({self.total_bytes / 2**20:.1f} MiB), {self.dirs} folders, "
            f"{self.symlinks} symlinks"
        )


@dataclass(frozen=True)
class _Scale:
    volume_bytes: int  # budget for volume data, without the big file
    small_file: int  # median size of the many small files
    max_file: int  # largest ordinary file
    large_share: float  # share of files drawn between 4 × small_file and max_file
    users: int  # rows of users per orchestrator (about)
    policies: int  # rows of cluster_policies per orchestrator (about)
    history: int  # extra history events per director
    big_file: int | None


_SCALES: dict[str, _Scale] = {
    "tiny": _Scale(1 * MiB, 2 * KiB, 48 * KiB, 0.05, 20, 8, 10, None),
    "small": _Scale(19 * MiB, 6 * KiB, 1 * MiB, 0.03, 60, 20, 40, None),
    "medium": _Scale(290 * MiB, 12 * KiB, 16 * MiB, 0.012, 200, 40, 120, None),
    "large": _Scale(1400 * MiB, 16 * KiB, 64 * MiB, 0.01, 400, 80, 300, DEFAULT_LARGE_BIG_FILE),
}


def scale_estimate(options: DemoOptions) -> int:
    """About how many bytes `write_demo_environment` writes for these options."""
    scale = _SCALES[options.volume_scale]
    big = options.big_file_bytes if options.big_file_bytes is not None else scale.big_file
    per_app = scale.volume_bytes / 12
    return int(per_app * options.applications) + (big or 0) + 2 * MiB


def services_network(options: DemoOptions) -> IPv4Network:
    """SERVICES, or WIDE_SERVICES when the demo has more VMs than SERVICES has addresses for them."""
    vms = options.orchestrators + len(CORE_SERVICES) + options.applications
    return SERVICES if FIRST_SERVICE_HOST + vms < SERVICES.num_addresses - 1 else WIDE_SERVICES
