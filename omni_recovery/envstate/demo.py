"""A realistic, deterministic demo OmniCloud environment state folder.

`write_demo_environment()` writes a whole environment (nodes, a Director ring, an Orchestrator
cluster with its database tables, the seven core services, applications with a dependency DAG,
volumes full of PostgreSQL-like data folders, logs, uploads and search indexes, the network
configuration and a real CA key pair) into a new folder. Everything is derived from the seed:
the same options give a byte-identical tree (contents, names, modes, symlink targets and mtimes).
Key material is real (Ed25519 from seeded bytes) but must never be used outside a demo.

Large files are streamed 1 MiB at a time; nothing is built whole in memory. The tree is written
into a hidden sibling folder and renamed into place at the end, so an interrupted run never
leaves a half-written environment that looks whole.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import os
import random
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from omni_recovery.envstate import database_volume
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
MAX_APPLICATIONS = 300
MAX_BIG_FILE = 64 * GiB
_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")

MANAGEMENT = IPv4Network("10.0.0.0/24")
SERVICES = IPv4Network("10.0.8.0/22")
STORAGE = IPv4Network("10.0.16.0/24")


class DemoOptionsError(EnvironmentStateError, ValueError):
    """The demo options are out of range or contradict each other."""


@dataclass(frozen=True)
class DemoOptions:
    """What to generate. `big_file_bytes`: size of one extra big streamed file (default: 1.1 GiB for
    "large", none for the other scales), so a backup's chunk size can be set below it. `database`: the
    last application is billing-db, whose volume is a real PostgreSQL data folder (database_volume;
    not byte-identical between runs)."""

    nodes: int = 5
    directors: int = 3
    orchestrators: int = 3
    applications: int = 12
    volume_scale: str = "small"
    seed: int = 42
    name: str = "demo"
    big_file_bytes: int | None = None
    database: bool = False

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


def write_demo_environment(
    root: Path, options: DemoOptions, progress: Callable[[int], None] | None = None
) -> DemoSummary:
    """Write a demo environment state folder at `root` (new, or an empty folder).

    `progress`, when given, is called with the number of bytes just written, after every write.
    Raises DemoOptionsError for bad options and EnvironmentStateError when `root` is not empty
    or the disk is too small; on any failure nothing is left at `root`.
    """
    options.validate()
    root = Path(root)
    if root.is_symlink():
        raise EnvironmentStateError(
            f"{root}: is a symlink; give a new or empty folder for the demo environment"
        )
    if root.exists():
        if not root.is_dir():
            raise EnvironmentStateError(f"{root}: exists and is not a folder")
        with os.scandir(root) as listing:
            if any(True for _ in listing):
                raise EnvironmentStateError(
                    f"{root}: not empty; the demo environment is written only into a new or empty folder"
                )
    parent = root.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    needed = scale_estimate(options)
    free = shutil.disk_usage(parent).free
    if needed > free:
        raise EnvironmentStateError(
            f"{parent}: {free / MiB:.0f} MiB free, the {options.volume_scale} demo environment needs "
            f"about {needed / MiB:.0f} MiB"
        )
    scale = _SCALES[options.volume_scale]
    big = options.big_file_bytes if options.big_file_bytes is not None else scale.big_file
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=parent))
    try:
        writer = _Writer(tmp, progress)
        demo = _Demo(options, scale, big, writer)
        demo.build()
        writer.finish(demo.recovery_point)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, root)  # replaces an empty folder atomically
        except OSError as exc:
            raise EnvironmentStateError(
                f"{root}: cannot move the finished environment into place: {exc}"
            ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return DemoSummary(
        root=root,
        name=options.name,
        seed=options.seed,
        volume_scale=options.volume_scale,
        nodes=options.nodes,
        directors=options.directors,
        orchestrators=options.orchestrators,
        services=len(CORE_SERVICES),
        applications=options.applications,
        volumes=demo.volume_count,
        vms=demo.vm_count,
        files=writer.files,
        dirs=writer.dirs,
        symlinks=writer.symlinks,
        total_bytes=writer.bytes,
        volume_bytes=writer.volume_bytes,
        largest_file_bytes=writer.largest,
    )


# -- writing ---------------------------------------------------------------------------------


class _Writer:
    """Writes files under a root with explicit modes (independent of the umask) and counts them."""

    def __init__(self, root: Path, progress: Callable[[int], None] | None) -> None:
        self.root = root
        self.progress = progress
        self.known_dirs: set[str] = {""}
        self.files = self.dirs = self.symlinks = 0
        self.bytes = self.volume_bytes = self.largest = 0

    def mkdir(self, rel: str, mode: int = 0o755) -> None:
        if rel in self.known_dirs:
            os.chmod(self.root / rel, mode)
            return
        parent = rel.rpartition("/")[0]
        if parent not in self.known_dirs:
            self.mkdir(parent)
        path = self.root / rel
        path.mkdir()
        os.chmod(path, mode)
        self.known_dirs.add(rel)
        self.dirs += 1

    def _open(self, rel: str, mode: int) -> int:
        parent = rel.rpartition("/")[0]
        if parent not in self.known_dirs:
            self.mkdir(parent)
        fd = os.open(self.root / rel, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(fd, mode)
        return fd

    def write_stream(self, rel: str, blocks: Iterator[bytes], mode: int = 0o644) -> int:
        fd = self._open(rel, mode)
        size = 0
        try:
            for block in blocks:
                view = memoryview(block)
                while view:
                    done = os.write(fd, view)
                    view = view[done:]
                size += len(block)
                self._count(rel, len(block))
        finally:
            os.close(fd)
        self.files += 1
        self.largest = max(self.largest, size)
        return size

    def write(self, rel: str, data: bytes, mode: int = 0o644) -> int:
        return self.write_stream(rel, iter((data,)), mode)

    def write_random(
        self, rel: str, size: int, rng: random.Random, mode: int = 0o644, head: bytes = b""
    ) -> int:
        """A file of `size` bytes: `head`, then seeded random bytes, streamed 1 MiB at a time."""

        def blocks() -> Iterator[bytes]:
            first = head[:size]
            left = size - len(first)
            block = first + rng.randbytes(min(left, BLOCK_SIZE - len(first)))
            left -= len(block) - len(first)
            yield block
            while left > 0:
                step = min(left, BLOCK_SIZE)
                yield rng.randbytes(step)
                left -= step

        return self.write_stream(rel, blocks(), mode)

    def text(self, rel: str, text: str, mode: int = 0o644) -> int:
        return self.write(rel, text.encode("utf-8"), mode)

    def yaml(self, rel: str, data: Any, mode: int = 0o644) -> int:
        return self.text(rel, _yaml(data), mode)

    def json(self, rel: str, data: Any, mode: int = 0o644) -> int:
        return self.text(rel, json.dumps(data, indent=2, ensure_ascii=False) + "\n", mode)

    def jsonl(self, rel: str, rows: list[dict[str, Any]], mode: int = 0o644) -> int:
        lines = "".join(json.dumps(row, ensure_ascii=False, separators=(", ", ": ")) + "\n" for row in rows)
        return self.text(rel, lines, mode)

    def symlink(self, rel: str, target: str) -> None:
        parent = rel.rpartition("/")[0]
        if parent not in self.known_dirs:
            self.mkdir(parent)
        os.symlink(target, self.root / rel)
        self.symlinks += 1

    def _count(self, rel: str, size: int) -> None:
        self.bytes += size
        if rel.startswith("volumes/"):
            self.volume_bytes += size
        if self.progress is not None:
            self.progress(size)

    def finish(self, moment: datetime) -> None:
        """Give every entry a deterministic mtime, up to 30 days before `moment`, children first."""
        end = int(moment.timestamp())
        for folder, dirnames, filenames in os.walk(self.root, topdown=False):
            rel_folder = os.path.relpath(folder, self.root)
            for name in (*dirnames, *filenames):
                rel = name if rel_folder == "." else f"{rel_folder}/{name}"
                back = int.from_bytes(
                    hashlib.sha256(rel.encode("utf-8", "surrogateescape")).digest()[:4], "big"
                )
                stamp = end - back % (30 * 86400)
                os.utime(os.path.join(folder, name), (stamp, stamp), follow_symlinks=False)
        os.utime(self.root, (end, end))


class _Dumper(yaml.SafeDumper):
    """Safe YAML without anchors and aliases: every file reads on its own, plainly."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _yaml(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _derive(seed: int, label: str, size: int = 32) -> bytes:
    return hashlib.shake_256(f"omni-recovery-demo/{seed}/{label}".encode()).digest(size)


def _rng(seed: int, label: str) -> random.Random:
    return random.Random(_derive(seed, label))


# -- the catalog of demo applications ---------------------------------------------------------

# name, priority, volumes ("type" or "type:name")
_APP_CATALOG: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("billing", "critical", ("postgres", "logs", "blobs:invoices")),
    ("auth-portal", "critical", ("postgres", "logs")),
    ("inventory", "standard", ("postgres", "logs")),
    ("orders", "critical", ("postgres", "logs")),
    ("payments", "critical", ("postgres", "logs")),
    ("catalog", "standard", ("postgres", "blobs:media")),
    ("search", "standard", ("index", "logs")),
    ("notifications", "low", ("logs",)),
    ("reporting", "low", ("postgres", "blobs:exports")),
    ("analytics", "low", ("postgres:warehouse", "logs")),
    ("shipping", "standard", ("postgres", "logs")),
    ("customer-profile", "standard", ("postgres", "blobs:avatars")),
    ("ledger", "critical", ("postgres", "logs")),
    ("recommendations", "low", ("index",)),
    ("pricing", "standard", ("postgres",)),
    ("helpdesk", "low", ("postgres", "blobs:attachments")),
    ("crm", "standard", ("postgres", "logs")),
    ("scheduler", "standard", ("postgres",)),
    ("audit-trail", "critical", ("logs", "blobs:archive")),
    ("wiki", "low", ("postgres", "blobs:uploads")),
    ("chat", "standard", ("postgres", "blobs:attachments")),
    ("media-transcoder", "low", ("blobs:media",)),
    ("geo", "low", ("index",)),
    ("feeds", "low", ("logs",)),
)
_EXTRA_APP_SHAPES: tuple[tuple[str, ...], ...] = (
    ("postgres", "logs"),
    ("postgres",),
    ("blobs:uploads", "logs"),
    ("index",),
    ("postgres", "blobs:attachments"),
)
_RANK = {"critical": 0, "standard": 1, "low": 2}
_VOLUME_WEIGHT = {"postgres": 4.0, "blobs": 3.0, "index": 2.0, "logs": 1.5}
_BLOB_KINDS: dict[str, tuple[tuple[str, bytes], ...]] = {
    "invoices": (("pdf", b"%PDF-1.7\n"),),
    "media": (
        ("jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
        ("png", b"\x89PNG\r\n\x1a\n"),
        ("mp4", b"\x00\x00\x00\x20ftypisom"),
    ),
    "exports": (("csv.gz", b"\x1f\x8b\x08\x00"), ("parquet", b"PAR1")),
    "avatars": (("png", b"\x89PNG\r\n\x1a\n"), ("jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")),
    "attachments": (("pdf", b"%PDF-1.6\n"), ("docx", b"PK\x03\x04"), ("png", b"\x89PNG\r\n\x1a\n")),
    "archive": (("tar.gz", b"\x1f\x8b\x08\x00"),),
    "uploads": (("bin", b""), ("zip", b"PK\x03\x04"), ("pdf", b"%PDF-1.5\n")),
}
_SERVICE_DEPENDS: dict[str, tuple[str, ...]] = {
    "storage": (),
    "auth": (),
    "monitoring": ("auth",),
    "logging": ("auth",),
    "network-management": ("monitoring",),
    "dns": ("network-management",),
    "api-gateway": ("auth", "dns", "logging"),
}
_SERVICE_PORTS: dict[str, list[int]] = {
    "storage": [3260, 2049, 7480],
    "auth": [8443],
    "monitoring": [9090, 9093],
    "logging": [9200, 5044],
    "network-management": [9696],
    "dns": [53],
    "api-gateway": [443, 8443],
}
_FIRST = (
    "anna", "ben", "carla", "david", "elena", "farid", "greta", "hugo", "ines", "jonas", "karin", "leo",
    "maria", "noah", "olga", "paul", "quinn", "rosa", "sven", "tara", "ugo", "vera", "wim", "xenia", "yusuf",
    "zoe",
)  # fmt: skip
_LAST = (
    "schmidt", "okafor", "nakamura", "garcia", "jensen", "rossi", "novak", "kowalski", "dubois", "silva",
    "khan", "müller", "lindqvist", "papadopoulos", "van-dijk", "ibrahim", "chen", "moreau", "horvat", "berg",
)  # fmt: skip
_RESOURCES = (
    "applications", "volumes", "secrets", "users", "roles", "policies", "clusters", "nodes", "networks",
    "backups", "metrics", "logs",
)  # fmt: skip
_ACTIONS = ("read", "create", "update", "delete")
_ROLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("admin", "Full control of the cluster", ("*",)),
    (
        "operator",
        "Runs applications and volumes",
        ("applications:*", "volumes:*", "metrics:read", "logs:read"),
    ),
    ("developer", "Deploys applications", ("applications:read", "applications:update", "logs:read")),
    ("auditor", "Reads everything except secrets", ("*:read",)),
    ("viewer", "Reads applications and metrics", ("applications:read", "metrics:read")),
    ("backup-operator", "Takes and restores backups", ("backups:*", "volumes:read")),
    ("security-officer", "Manages users, roles and policies", ("users:*", "roles:*", "policies:*")),
    ("network-admin", "Manages networks", ("networks:*", "nodes:read")),
    ("secret-manager", "Manages application secrets", ("secrets:*",)),
    ("service-account", "Used by applications", ("applications:read", "secrets:read", "metrics:create")),
)
_LOG_MESSAGES = (
    "GET /api/v1/{r}/{n} 200 {ms}ms",
    "POST /api/v1/{r} 201 {ms}ms",
    "GET /healthz 200 {ms}ms",
    "PUT /api/v1/{r}/{n} 204 {ms}ms",
    "GET /api/v1/{r}/{n} 404 {ms}ms",
    "connection pool: {n} active, {ms} idle",
    "job {r}-sync finished in {ms}ms, {n} rows",
    "cache miss for {r}:{n}",
    "slow query on {r} took {ms}ms",
    "retrying request to {r} (attempt {n})",
    "token refreshed for client {n}",
)
_LOG_LEVELS = ("INFO",) * 14 + ("DEBUG",) * 4 + ("WARN",) * 2 + ("ERROR",)


# -- the demo builder ------------------------------------------------------------------------


class _Demo:
    def __init__(self, options: DemoOptions, scale: _Scale, big: int | None, writer: _Writer) -> None:
        self.o = options
        self.scale = scale
        self.big = big
        self.w = writer
        self.seed = options.seed
        self.domain = f"{options.name}.omnicloud.internal"
        rng = _rng(self.seed, "environment")
        start = datetime(2026, 1, 1, tzinfo=UTC)
        self.recovery_point = start + timedelta(seconds=rng.randrange(300 * 86400))
        self.region = rng.choice(("eu-west-1", "eu-central-1", "us-east-2", "ap-southeast-1"))
        self.zones = [f"{self.region}{z}" for z in "abc"]
        self.volume_count = 0
        self.vm_count = 0
        self._vm_ids: set[str] = set()
        self._next_service_ip = int(SERVICES.network_address) + 10
        self._next_storage_ip = int(STORAGE.network_address) + 230

    # -- plan --------------------------------------------------------------------------

    def service_ip(self) -> str:
        address = IPv4Address(self._next_service_ip)
        self._next_service_ip += 1
        assert address in SERVICES and address != SERVICES.broadcast_address
        return str(address)

    def vm_id(self, rng: random.Random) -> str:
        while True:
            candidate = f"vm-{rng.getrandbits(48):012x}"
            if candidate not in self._vm_ids:
                self._vm_ids.add(candidate)
                return candidate

    def build(self) -> None:
        self.plan_nodes()
        self.plan_vms_and_apps()
        self.write_system()
        self.write_nodes_and_directors()
        self.write_orchestrators()
        self.write_services()
        self.write_applications()
        self.write_network()
        self.write_volumes()

    def plan_nodes(self) -> None:
        rng = _rng(self.seed, "nodes")
        mac_prefix = f"3c:ec:ef:{_derive(self.seed, 'mac', 1)[0]:02x}"
        self.nodes: list[dict[str, Any]] = []
        for i in range(self.o.nodes):
            if i < self.o.directors:
                role = "director"
            else:
                role = "compute" if (i - self.o.directors) % 2 == 0 else "storage"
            if role == "director":
                cores, memory = rng.choice((32, 48)), rng.choice((131072, 262144))
                disks = self.disks(rng, 2, "nvme", 1788, "SAMSUNG MZQL21T9HCJR-00A07")
            elif role == "compute":
                cores, memory = rng.choice((64, 96, 128)), rng.choice((524288, 786432, 1048576))
                disks = self.disks(rng, 2, "nvme", 3576, "SAMSUNG MZQL23T8HCLS-00A07")
            else:
                cores, memory = rng.choice((16, 24)), rng.choice((65536, 131072))
                disks = self.disks(rng, 2, "sd", 447, "INTEL SSDSC2KB480G8") + self.disks(
                    rng, rng.choice((8, 10, 12)), "sd", 14902, "ST16000NM000J", first=2
                )
            nics = [
                {
                    "name": "eno1",
                    "mac": f"{mac_prefix}:{i:02x}:01",
                    "ip": str(MANAGEMENT.network_address + 11 + i),
                    "prefix": MANAGEMENT.prefixlen,
                    "gateway": str(MANAGEMENT.network_address + 1),
                    "vlan": 10,
                },
                {
                    "name": "eno2",
                    "mac": f"{mac_prefix}:{i:02x}:02",
                    "ip": str(STORAGE.network_address + 11 + i),
                    "prefix": STORAGE.prefixlen,
                    "gateway": None,
                    "vlan": 30,
                },
            ]
            self.nodes.append(
                {
                    "hostname": f"{self.o.name}-node-{i + 1:02d}",
                    "role": role,
                    "cpu_cores": cores,
                    "memory_mib": memory,
                    "disks": disks,
                    "nics": nics,
                }
            )
        self.directors = [f"dir-{j + 1}" for j in range(self.o.directors)]
        self.ring_id = f"{self.o.name}-ring-1"

    @staticmethod
    def disks(
        rng: random.Random, count: int, kind: str, size_gib: int, model: str, first: int = 0
    ) -> list[dict[str, Any]]:
        disks = []
        for k in range(first, first + count):
            device = f"nvme{k}n1" if kind == "nvme" else f"sd{chr(ord('a') + k)}"
            serial = "".join(rng.choice("ABCDEFGHJKLMNPRSTVWXYZ0123456789") for _ in range(14))
            disks.append({"device": device, "size_gib": size_gib, "model": model, "serial": serial})
        return disks

    def plan_vms_and_apps(self) -> None:
        rng = _rng(self.seed, "vms")
        self.vms: dict[str, list[dict[str, Any]]] = {d: [] for d in self.directors}
        slot = 0

        def place_vm(vm: dict[str, Any]) -> str:
            nonlocal slot
            director = self.directors[slot % len(self.directors)]
            slot += 1
            self.vms[director].append(vm)
            self.vm_count += 1
            return director

        image_version = OMNICLOUD_VERSION
        self.orchestrators: list[dict[str, Any]] = []
        for k in range(self.o.orchestrators):
            oid = f"orch-{k + 1}"
            vm = {
                "vm_id": self.vm_id(rng),
                "name": oid,
                "role": "orchestrator",
                "cpu": 8,
                "memory_mib": 16384,
                "disk_gib": 200,
                "image": f"omnicloud/orchestrator:{image_version}",
                "networks": [{"subnet": "services", "ip": self.service_ip()}],
            }
            director = place_vm(vm)
            self.orchestrators.append({"id": oid, "vm": vm, "director": director})
        self.services: list[dict[str, Any]] = []
        for name in CORE_SERVICES:
            networks = [{"subnet": "services", "ip": self.service_ip()}]
            if name == "storage":
                networks.append({"subnet": "storage", "ip": str(IPv4Address(self._next_storage_ip))})
                self._next_storage_ip += 1
            vm = {
                "vm_id": self.vm_id(rng),
                "name": f"svc-{name}",
                "role": "service",
                "cpu": 8 if name in ("storage", "logging") else 4,
                "memory_mib": 32768 if name in ("storage", "logging") else 8192,
                "disk_gib": 500 if name in ("storage", "logging") else 100,
                "image": f"omnicloud/{name}:{image_version}",
                "networks": networks,
            }
            director = place_vm(vm)
            self.services.append({"name": name, "vm": vm, "director": director})
        self.apps: list[dict[str, Any]] = []
        for i in range(self.o.applications):
            if self.o.database and i == self.o.applications - 1:
                name, priority, volumes = database_volume.APP
            elif i < len(_APP_CATALOG):
                name, priority, volumes = _APP_CATALOG[i]
            else:
                base = _APP_CATALOG[i % len(_APP_CATALOG)][0]
                name = f"{base}-{i // len(_APP_CATALOG) + 1}"
                priority = rng.choice(("critical", "standard", "standard", "low", "low"))
                volumes = rng.choice(_EXTRA_APP_SHAPES)
            app = self.plan_app(rng, i, name, priority, volumes)
            vm = {
                "vm_id": self.vm_id(rng),
                "name": f"app-{name}",
                "role": "app",
                "cpu": max(1, math.ceil(sum(c["cpu"] * c["replicas"] for c in app["containers"]))),
                "memory_mib": sum(c["memory_mib"] * c["replicas"] for c in app["containers"]) + 1024,
                "disk_gib": 50,
                "image": f"omnicloud/app-host:{image_version}",
                "networks": [{"subnet": "services", "ip": self.service_ip()}],
            }
            app["vm"] = vm
            app["director"] = place_vm(vm)
            self.apps.append(app)

    def plan_app(
        self, rng: random.Random, index: int, name: str, priority: str, shapes: tuple[str, ...]
    ) -> dict[str, Any]:
        orchestrator = self.orchestrators[index % len(self.orchestrators)]["id"]
        volumes = []
        for shape in shapes:
            kind, _, vol = shape.partition(":")
            vol = vol or {"postgres": "pgdata", "logs": "logs", "index": "index"}[kind]
            mount = {
                "postgres": "/var/lib/postgresql/data",
                "logs": f"/var/log/{name}",
                "index": f"/var/lib/{name}/index",
                "blobs": f"/srv/{name}/{vol}",
            }[kind]
            klass = "hdd" if kind in ("logs", "blobs") and vol != "media" else "ssd"
            volumes.append({"name": vol, "kind": kind, "mount_path": mount, "storage_class": klass})
        version = f"{rng.randint(1, 6)}.{rng.randint(0, 24)}.{rng.randint(0, 9)}"
        registry = f"registry.{self.domain}/{name}"
        has_db = any(v["kind"] == "postgres" for v in volumes)
        env = {"LOG_LEVEL": "info", "SERVICE_NAME": name, "AUTH_URL": f"https://auth.services.{self.domain}"}
        if has_db:
            env |= {"DB_HOST": "127.0.0.1", "DB_PORT": "5432", "DB_NAME": name.replace("-", "_")}
        secret_refs = ["api-signing-key", *(["db-password"] if has_db else [])]
        containers: list[dict[str, Any]] = [
            {
                "name": "api",
                "image": f"{registry}/api:{version}",
                "cpu": rng.choice((0.5, 1, 2)),
                "memory_mib": rng.choice((512, 1024, 2048)),
                "replicas": rng.choice((2, 3)),
                "ports": [8080],
                "env": env,
                "secret_refs": secret_refs,
            }
        ]
        if rng.random() < 0.5:
            containers.append(
                {
                    "name": "worker",
                    "image": f"{registry}/worker:{version}",
                    "cpu": rng.choice((0.5, 1)),
                    "memory_mib": rng.choice((512, 1024)),
                    "replicas": rng.choice((1, 2)),
                    "ports": [],
                    "env": dict(env),
                    "secret_refs": list(secret_refs),
                }
            )
        if has_db:
            containers.append(
                {
                    "name": "postgres",
                    "image": "postgres:16.4",
                    "cpu": 2,
                    "memory_mib": 4096,
                    "replicas": 1,
                    "ports": [5432],
                    "env": {"PGDATA": "/var/lib/postgresql/data", "POSTGRES_DB": name.replace("-", "_")},
                    "secret_refs": ["db-password"],
                }
            )
        if any(v["kind"] == "index" for v in volumes):
            containers.append(
                {
                    "name": "opensearch",
                    "image": "opensearchproject/opensearch:2.17.1",
                    "cpu": 2,
                    "memory_mib": 8192,
                    "replicas": 1,
                    "ports": [9200],
                    "env": {"OPENSEARCH_JAVA_OPTS": "-Xms4g -Xmx4g", "discovery.type": "single-node"},
                    "secret_refs": [],
                }
            )
        depends_on = []
        if index:
            count = min(index, rng.choice((0, 1, 1, 2, 2, 3)))
            for other in sorted(rng.sample(range(index), count)):
                target = self.apps[other]
                allowed_hard = _RANK[target["priority"]] <= _RANK[priority]
                strength = "hard" if allowed_hard and rng.random() < 0.7 else "soft"
                depends_on.append({"app": target["name"], "strength": strength})
        return {
            "name": name,
            "priority": priority,
            "orchestrator": orchestrator,
            "version": version,
            "containers": containers,
            "volumes": volumes,
            "depends_on": depends_on,
        }

    # -- system --------------------------------------------------------------------------

    def dns_ip(self) -> str:
        return next(_vm_ip(s) for s in self.services if s["name"] == "dns")

    def write_system(self) -> None:
        self.w.yaml(
            "environment.yaml",
            {
                "name": self.o.name,
                "domain": self.domain,
                "regions": [self.region],
                "omnicloud_version": OMNICLOUD_VERSION,
                "time": {
                    "timezone": "UTC",
                    "ntp_servers": ["0.pool.ntp.org", "1.pool.ntp.org", "2.pool.ntp.org"],
                },
                "dns": {"servers": [self.dns_ip()], "search": [self.domain, f"services.{self.domain}"]},
            },
        )
        self.w.yaml(
            "recovery/recovery_metadata.yaml",
            {
                "recovery_point": _iso(self.recovery_point),
                "phase_hints": [
                    {"phase": "directors", "hint": f"form ring {self.ring_id} before creating any VM"},
                    {
                        "phase": "orchestrators",
                        "hint": "restore all orchestrators before forming the cluster",
                    },
                    {"phase": "storage", "hint": "service storage first; volume data takes the longest"},
                    {"phase": "core-services", "hint": "auth, then monitoring and logging, then the rest"},
                    {"phase": "applications", "hint": "critical first, then standard, then low"},
                ],
                "notes": (
                    f"Demo environment {self.o.name} (seed {self.seed}, scale {self.o.volume_scale}). "
                    "Generated by omni-recovery; its keys are for tests only."
                ),
            },
        )
        key = Ed25519PrivateKey.from_private_bytes(_derive(self.seed, "ca-key"))
        rng = _rng(self.seed, "ca")
        not_before = (self.recovery_point - timedelta(days=400 + rng.randrange(300))).replace(microsecond=0)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "OmniCloud"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, self.o.name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{self.o.name} environment CA"),
            ]
        )
        serial = int.from_bytes(_derive(self.seed, "ca-serial", 19), "big") | 1
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_before + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, None)
        )
        self.w.write("keys/ca.crt", cert.public_bytes(serialization.Encoding.PEM))
        self.w.write("keys/ca.key", _private_pem(key), 0o600)
        accounts = Ed25519PrivateKey.from_private_bytes(_derive(self.seed, "service-accounts-key"))
        self.w.write("keys/service-accounts.key", _private_pem(accounts), 0o600)
        os.chmod(self.w.root / "keys", 0o700)

    # -- nodes and directors --------------------------------------------------------------

    def write_nodes_and_directors(self) -> None:
        for node in self.nodes:
            self.w.yaml(f"nodes/{node['hostname']}.yaml", node)
        for j, did in enumerate(self.directors):
            node = self.nodes[j]
            base = f"directors/{did}"
            self.w.yaml(
                f"{base}/config.yaml",
                {
                    "director_id": did,
                    "ring_id": self.ring_id,
                    "node": node["hostname"],
                    "addresses": {"management": node["nics"][0]["ip"], "storage": node["nics"][1]["ip"]},
                    "ring_peers": [d for d in self.directors if d != did],
                    "storage_paths": {
                        "state": "/var/lib/omni/director/state",
                        "images": "/var/lib/omni/images",
                        "vm_disks": "/var/lib/omni/vm-disks",
                    },
                    "reservations": {"cpu_cores": 4, "memory_mib": 16384},
                },
            )
            self.w.json(f"{base}/state.json", {"vms": self.vms[did], "history": self.history(did)})
            self.w.yaml(f"{base}/hardware.yaml", node)

    def history(self, did: str) -> list[dict[str, str]]:
        rng = _rng(self.seed, f"history/{did}")
        end = self.recovery_point
        joined = end - timedelta(days=500 + rng.randrange(200))
        events: list[tuple[datetime, str, str]] = [(joined, "ring.joined", f"joined ring {self.ring_id}")]
        for vm in self.vms[did]:
            created = joined + timedelta(seconds=rng.randrange(int((end - joined).total_seconds() * 0.8)))
            events.append((created, "vm.created", f"{vm['vm_id']} ({vm['name']}) created"))
            events.append(
                (created + timedelta(seconds=rng.randrange(30, 300)), "vm.started", f"{vm['vm_id']} started")
            )
        kinds: tuple[tuple[str, str], ...] = (
            ("snapshot.created", "snapshot of {vm} taken"),
            ("vm.migrated", "{vm} live-migrated and back after host maintenance"),
            ("vm.resized", "{vm} memory resized"),
            ("host.maintenance", "maintenance window on {node}"),
            ("director.upgraded", "director software upgraded to " + OMNICLOUD_VERSION),
            ("ring.leader_changed", "ring leader is now {peer}"),
        )
        names = [vm["vm_id"] for vm in self.vms[did]]
        if not names:  # a Director without VMs has only host and ring events
            kinds = kinds[3:]
        for _ in range(self.scale.history):
            event, text = rng.choice(kinds)
            at = joined + timedelta(seconds=rng.randrange(int((end - joined).total_seconds())))
            vm_id = rng.choice(names) if names else ""
            detail = text.format(
                vm=vm_id,
                node=self.nodes[self.directors.index(did)]["hostname"],
                peer=rng.choice(self.directors),
            )
            events.append((at, event, detail))
        events.sort()
        return [{"at": _iso(at), "event": event, "detail": detail} for at, event, detail in events]

    # -- orchestrators ----------------------------------------------------------------

    def write_orchestrators(self) -> None:
        ids = [o["id"] for o in self.orchestrators]
        cluster = f"{self.o.name}-cluster-1"
        for orch in self.orchestrators:
            oid = orch["id"]
            base = f"orchestrators/{oid}"
            self.w.yaml(
                f"{base}/config.yaml",
                {
                    "orchestrator_id": oid,
                    "cluster_id": cluster,
                    "vm_id": orch["vm"]["vm_id"],
                    "director": orch["director"],
                    "address": _vm_ip(orch),
                    "peers": [p for p in ids if p != oid],
                    "placement": {"strategy": "spread", "zones": list(self.zones)},
                },
            )
            tables = self.tables(oid)
            self.w.json(
                f"{base}/db/schema.json", {"tables": {n: {"columns": c} for n, (c, _) in tables.items()}}
            )
            for table, (_, rows) in tables.items():
                self.w.jsonl(f"{base}/db/{table}.jsonl", rows, 0o600 if table == "users" else 0o644)

    def tables(self, oid: str) -> dict[str, tuple[dict[str, str], list[dict[str, Any]]]]:
        rng = _rng(self.seed, f"db/{oid}")
        end = self.recovery_point
        permissions = [
            {"permission_id": f"{r}:{a}", "resource": r, "action": a, "description": f"{a} {r}"}
            for r in _RESOURCES
            for a in _ACTIONS
        ]
        roles = []
        for name, description, grants in _ROLES:
            granted = [
                p["permission_id"]
                for p in permissions
                if any(_grant(g, p["resource"], p["action"]) for g in grants)
            ]
            roles.append(
                {
                    "role_id": f"role-{name}",
                    "name": name,
                    "description": description,
                    "permission_ids": granted,
                    "builtin": name in ("admin", "viewer"),
                }
            )
        managed = [a for a in self.apps if a["orchestrator"] == oid]
        users = []
        seen: set[str] = set()
        count = max(5, self.scale.users + rng.randrange(-self.scale.users // 5, self.scale.users // 5 + 1))
        for n in range(count):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            username = f"{first}.{last}"
            while username in seen:
                username = f"{first}.{last}{rng.randrange(2, 100)}"
            seen.add(username)
            users.append(self.user(rng, username, f"{first.title()} {last.title()}", n, end))
        for app in managed:
            users.append(self.user(rng, f"svc-{app['name']}", f"{app['name']} service account", -1, end))
        app_definitions = []
        for app in managed:
            revisions = rng.randint(1, 4)
            for revision in range(1, revisions + 1):
                spec = json.dumps([app["containers"], revision], sort_keys=True).encode()
                app_definitions.append(
                    {
                        "app_id": f"app-{app['name']}",
                        "name": app["name"],
                        "revision": revision,
                        "version": app["version"] if revision == revisions else f"0.{revision}.0",
                        "priority": app["priority"],
                        "spec_sha256": hashlib.sha256(spec).hexdigest(),
                        "created_at": _iso(
                            end - timedelta(days=(revisions - revision) * 30 + rng.randrange(30))
                        ),
                        "created_by": rng.choice(users)["username"],
                        "active": revision == revisions,
                    }
                )
        policies = []
        for n in range(max(4, self.scale.policies + rng.randrange(-2, 3))):
            kind = ("quota", "placement", "security", "network", "backup")[n % 5]
            target = self.apps[rng.randrange(len(self.apps))]["name"]
            rule: dict[str, Any] = {
                "quota": {
                    "app": target,
                    "max_cpu": rng.choice((4, 8, 16)),
                    "max_memory_mib": rng.choice((8192, 16384)),
                },
                "placement": {"app": target, "anti_affinity": "zone", "zones": list(self.zones)},
                "security": {"run_as_non_root": True, "read_only_root": rng.random() < 0.5},
                "network": {"default": "deny", "allow_from": ["api-gateway"]},
                "backup": {
                    "schedule": f"0 {rng.randrange(24)} * * *",
                    "retention_days": rng.choice((7, 14, 30)),
                },
            }[kind]
            policies.append(
                {
                    "policy_id": f"pol-{n + 1:04d}",
                    "name": f"{kind}-{n + 1}",
                    "kind": kind,
                    "scope": "cluster" if kind in ("security", "network") else f"app:{target}",
                    "rule": rule,
                    "enabled": rng.random() < 0.9,
                }
            )
        return {
            "users": (
                {"user_id": "text", "username": "text", "email": "text", "display_name": "text",
                 "password_hash": "text", "roles": "json", "mfa_enabled": "boolean", "disabled": "boolean",
                 "created_at": "timestamp", "last_login": "timestamp"},
                users,
            ),
            "roles": (
                {"role_id": "text", "name": "text", "description": "text", "permission_ids": "json",
                 "builtin": "boolean"},
                roles,
            ),
            "permissions": (
                {"permission_id": "text", "resource": "text", "action": "text", "description": "text"},
                permissions,
            ),
            "app_definitions": (
                {"app_id": "text", "name": "text", "revision": "integer", "version": "text",
                 "priority": "text", "spec_sha256": "text", "created_at": "timestamp", "created_by": "text",
                 "active": "boolean"},
                app_definitions,
            ),
            "cluster_policies": (
                {"policy_id": "text", "name": "text", "kind": "text", "scope": "text", "rule": "json",
                 "enabled": "boolean"},
                policies,
            ),
        }  # fmt: skip

    def user(self, rng: random.Random, username: str, display: str, n: int, end: datetime) -> dict[str, Any]:
        salt = rng.randbytes(16)
        digest = hashlib.sha256(salt + username.encode()).digest()
        b64 = base64.b64encode
        role = "service-account" if n < 0 else ("admin" if n < 2 else rng.choice([r[0] for r in _ROLES[1:9]]))
        created = end - timedelta(seconds=rng.randrange(3 * 365 * 86400))
        login = created + timedelta(seconds=rng.randrange(max(1, int((end - created).total_seconds()))))
        return {
            "user_id": f"u-{rng.getrandbits(48):012x}",
            "username": username,
            "email": f"{username}@{self.o.name}.example.com",
            "display_name": display,
            "password_hash": f"$scrypt$ln=16,r=8,p=1${b64(salt).decode()}${b64(digest).decode()}",
            "roles": [role],
            "mfa_enabled": n >= 0 and rng.random() < 0.7,
            "disabled": n >= 2 and rng.random() < 0.05,
            "created_at": _iso(created),
            "last_login": _iso(login) if rng.random() < 0.9 else None,
        }

    # -- services and applications ---------------------------------------------------------

    def write_services(self) -> None:
        for service in self.services:
            name = service["name"]
            self.w.yaml(
                f"services/{name}/service.yaml",
                {
                    "name": name,
                    "category": "storage" if name == "storage" else "core",
                    "role": name,
                    "vm": service["vm"]["vm_id"],
                    "version": OMNICLOUD_VERSION,
                    "ports": _SERVICE_PORTS[name],
                    "depends_on": list(_SERVICE_DEPENDS[name]),
                },
            )

    def write_applications(self) -> None:
        for app in self.apps:
            name = app["name"]
            self.w.yaml(
                f"applications/{name}/app.yaml",
                {
                    "name": name,
                    "priority": app["priority"],
                    "orchestrator": app["orchestrator"],
                    "version": app["version"],
                    "vm": app["vm"]["vm_id"],
                    "containers": app["containers"],
                    "volumes": [{"name": v["name"], "mount_path": v["mount_path"]} for v in app["volumes"]],
                    "depends_on": app["depends_on"],
                },
            )
            rng = _rng(self.seed, f"secrets/{name}")
            refs = sorted({ref for c in app["containers"] for ref in c["secret_refs"]})
            secrets = {ref: base64.urlsafe_b64encode(rng.randbytes(24)).decode().rstrip("=") for ref in refs}
            secrets["tls-key-passphrase"] = base64.b64encode(rng.randbytes(18)).decode()
            self.w.json(f"applications/{name}/secrets.json", {"secrets": secrets}, 0o600)

    # -- network ------------------------------------------------------------------------

    def write_network(self) -> None:
        gateway = {n: str(net.network_address + 1) for n, net in self.subnets().items()}
        self.w.yaml(
            "network/subnets.yaml",
            {
                "subnets": {
                    "management": {"cidr": str(MANAGEMENT), "gateway": gateway["management"], "vlan": 10,
                                   "purpose": "node and director management"},
                    "services": {"cidr": str(SERVICES), "gateway": gateway["services"], "vlan": 20,
                                 "purpose": "VMs: orchestrators, core services, applications"},
                    "storage": {"cidr": str(STORAGE), "gateway": None, "vlan": 30,
                                "purpose": "storage replication and volume traffic"},
                }
            },
        )  # fmt: skip
        self.w.yaml(
            "network/routes.yaml",
            {
                "routes": [
                    _route("0.0.0.0/0", gateway["management"], "management", 100),
                    _route("0.0.0.0/0", gateway["services"], "services", 100),
                    _route(str(SERVICES), gateway["management"], "management", 10),
                    _route(str(MANAGEMENT), gateway["services"], "services", 10),
                    _route("172.16.0.0/12", str(MANAGEMENT.network_address + 254), "management", 50)
                    | {"description": "operations VPN"},
                ]
            },
        )  # fmt: skip
        policies: list[dict[str, Any]] = [
            {"name": "management-to-services", "action": "allow", "from": {"subnet": "management"},
             "to": {"subnet": "services"}, "protocol": "tcp", "ports": [22, 443, 7443, 9443]},
            {"name": "services-to-storage", "action": "allow", "from": {"subnet": "services"},
             "to": {"subnet": "storage"}, "protocol": "tcp", "ports": [2049, 3260, 7480]},
            {"name": "storage-to-management", "action": "deny", "from": {"subnet": "storage"},
             "to": {"subnet": "management"}, "protocol": "any", "ports": []},
            {"name": "dns", "action": "allow", "from": {"subnet": "services"}, "to": {"service": "dns"},
             "protocol": "udp", "ports": [53]},
        ]  # fmt: skip
        for planned in self.apps:
            for dep in planned["depends_on"]:
                policies.append({"name": f"{planned['name']}-to-{dep['app']}", "action": "allow",
                                 "from": {"app": planned["name"]}, "to": {"app": dep["app"]},
                                 "protocol": "tcp", "ports": [8080]})  # fmt: skip
        self.w.yaml("network/policies.yaml", {"default_action": "deny", "policies": policies})
        records = []
        for j, did in enumerate(self.directors):
            records.append(self.record(f"{did}.directors", self.nodes[j]["nics"][0]["ip"], f"director:{did}"))
        for orch in self.orchestrators:
            records.append(
                self.record(f"{orch['id']}.orchestrators", _vm_ip(orch), f"orchestrator:{orch['id']}")
            )
        for service in self.services:
            records.append(
                self.record(f"{service['name']}.services", _vm_ip(service), f"service:{service['name']}")
            )
        for app in self.apps:
            records.append(self.record(f"{app['name']}.apps", _vm_ip(app), f"application:{app['name']}"))
        self.w.yaml(
            "network/dns.yaml",
            {"zone": self.domain, "ttl": 300, "servers": [self.dns_ip()], "records": records},
        )
        self.w.yaml("network/connectivity.yaml", {"links": self.links()})

    @staticmethod
    def subnets() -> dict[str, IPv4Network]:
        return {"management": MANAGEMENT, "services": SERVICES, "storage": STORAGE}

    def record(self, label: str, address: str, component: str) -> dict[str, Any]:
        return {"name": f"{label}.{self.domain}", "type": "A", "address": address, "component": component}

    def links(self) -> list[dict[str, Any]]:
        links: list[dict[str, Any]] = []

        def link(source: str, target: str, ports: list[int], protocol: str = "tcp") -> None:
            links.append({"from": source, "to": target, "ports": ports, "protocol": protocol})

        for did in self.directors:
            for peer in self.directors:
                if peer != did:
                    link(f"director:{did}", f"director:{peer}", [9444])
        for orch in self.orchestrators:
            link(f"orchestrator:{orch['id']}", f"director:{orch['director']}", [9443])
            for other in self.orchestrators:
                if other is not orch:
                    link(f"orchestrator:{orch['id']}", f"orchestrator:{other['id']}", [7444])
        for service in self.services:
            name = service["name"]
            if name != "storage":
                link(f"service:{name}", "service:storage", _SERVICE_PORTS["storage"])
            for dep in _SERVICE_DEPENDS[name]:
                link(f"service:{name}", f"service:{dep}", _SERVICE_PORTS[dep])
        for app in self.apps:
            cid = f"application:{app['name']}"
            link(cid, f"orchestrator:{app['orchestrator']}", [7443])
            link(cid, "service:auth", _SERVICE_PORTS["auth"])
            link(cid, "service:dns", [53], "udp")
            for dep in app["depends_on"]:
                link(cid, f"application:{dep['app']}", [8080])
        return links

    # -- volumes ------------------------------------------------------------------------

    def write_volumes(self) -> None:
        rng = _rng(self.seed, "volume-budget")
        volumes = [(app, vol) for app in self.apps for vol in app["volumes"]]
        self.volume_count = len(volumes)
        if not volumes:
            return
        weights = [
            (6.0 if vol["name"] == "warehouse" else _VOLUME_WEIGHT[vol["kind"]]) * rng.uniform(0.7, 1.3)
            for _, vol in volumes
        ]
        # Budget scales with the application count: the per-scale total is for 12 applications.
        total = self.scale.volume_bytes * len(self.apps) / 12
        big_home = None
        if self.big:
            order = sorted(
                range(len(volumes)),
                key=lambda k: (volumes[k][1]["name"] != "exports", volumes[k][1]["kind"] != "blobs", k),
            )
            big_home = order[0]
        for k, ((app, vol), weight) in enumerate(zip(volumes, weights, strict=True)):
            budget = int(total * weight / sum(weights))
            base = f"volumes/{app['name']}/{vol['name']}"
            vrng = _rng(self.seed, f"volume/{app['name']}/{vol['name']}")
            start = self.w.volume_bytes
            writer = {"postgres": self.postgres, "logs": self.logs, "blobs": self.blobs, "index": self.index}
            if app["name"] == database_volume.APP[0]:
                database_volume.add_to_demo(self.w, f"{base}/files")
            else:
                writer[vol["kind"]](f"{base}/files", budget, vrng, app["name"], vol["name"])
            if k == big_home and self.big:
                day = self.recovery_point.strftime("%Y%m%d")
                self.w.write_random(f"{base}/files/exports/full-export-{day}.tar", self.big, vrng,
                                    head=b"full-export\x00")  # fmt: skip
            written = self.w.volume_bytes - start
            size_gib = next(
                s for s in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if s * GiB >= written * 2
            )
            self.w.yaml(
                f"{base}/volume.yaml",
                {
                    "app": app["name"],
                    "name": vol["name"],
                    "size_gib": size_gib,
                    "storage_class": vol["storage_class"],
                    "mount_path": vol["mount_path"],
                    "source_path": f"/var/lib/omni/volumes/{vol['storage_class']}/{base.partition('/')[2]}",
                },
            )

    def sample_size(self, rng: random.Random, page: int = 1, left: int | None = None) -> int:
        """A file size: mostly small (log-normal around small_file), a few up to max_file, at most
        `left` (rounded up to whole pages)."""
        scale = self.scale
        if rng.random() < scale.large_share:
            size = int(rng.uniform(scale.small_file * 4, scale.max_file))
        else:
            size = int(rng.lognormvariate(math.log(scale.small_file), 0.9))
        size = min(size, scale.max_file)
        if left is not None:
            size = min(size, left)
        size = max(page, size)
        return -(-size // page) * page

    def postgres(self, base: str, budget: int, rng: random.Random, app: str, vol: str) -> None:
        w = self.w
        start = w.volume_bytes
        w.mkdir(base, 0o700)
        page = 8192

        def put(rel: str, data: bytes) -> None:
            w.write(f"{base}/{rel}", data, 0o600)

        def pages(rel: str, size: int) -> None:
            w.write_random(f"{base}/{rel}", size, rng, 0o600)

        for folder in ("global", "base", "pg_wal", "pg_xact", "pg_multixact", "pg_multixact/offsets",
                       "pg_multixact/members", "pg_subtrans", "pg_logical", "pg_commit_ts", "pg_dynshmem",
                       "pg_notify", "pg_replslot", "pg_serial", "pg_snapshots", "pg_stat", "pg_stat_tmp",
                       "pg_tblspc", "pg_twophase", "pg_logical/mappings", "pg_logical/snapshots",
                       "pg_wal/archive_status"):  # fmt: skip
            w.mkdir(f"{base}/{folder}", 0o700)
        put("PG_VERSION", b"16\n")
        put("postgresql.conf", _postgresql_conf(app, rng).encode())
        put("postgresql.auto.conf", b"# Do not edit this file manually!\n"
                                    b"# It will be overwritten by the ALTER SYSTEM command.\n")  # fmt: skip
        put("pg_hba.conf", _PG_HBA.encode())
        put("pg_ident.conf", b"# MAPNAME       SYSTEM-USERNAME         PG-USERNAME\n")
        put("postmaster.opts", b'/usr/lib/postgresql/16/bin/postgres "-D" "/var/lib/postgresql/data"\n')
        lean = budget < 512 * KiB  # a tiny demo keeps the catalog skeleton small
        pages("global/pg_control", page)
        pages("global/pg_filenode.map", 512)
        for rel in ("global/1262",) if lean else ("global/1213", "global/1260", "global/1261", "global/1262"):
            pages(rel, page * rng.randint(1, 2))
        for rel in (
            ("pg_xact/0000",)
            if lean
            else (
                "pg_xact/0000",
                "pg_multixact/offsets/0000",
                "pg_multixact/members/0000",
                "pg_subtrans/0000",
            )
        ):
            pages(rel, page)
        pages("pg_logical/replorigin_checkpoint", 8)
        if budget >= 64 * MiB:  # WAL segments, 16 MiB each, in the big scales only
            for segment in range(1, min(3, budget // (64 * MiB)) + 1):
                pages(f"pg_wal/{1:08X}{0:08X}{segment:08X}", 16 * MiB)
        templates = (1, 4, 5)
        app_db = 16384 + rng.randrange(1, 400)
        for oid in (*templates, app_db):
            put(f"base/{oid}/PG_VERSION", b"16\n")
            pages(f"base/{oid}/pg_filenode.map", 512)
        for oid in templates[:1] if lean else templates:
            for relfilenode in (1259,) if lean else (1247, 1249, 1259):
                pages(f"base/{oid}/{relfilenode}", page * rng.randint(1, 3))
        relfilenode = 16385
        while w.volume_bytes - start < budget:
            pages(
                f"base/{app_db}/{relfilenode}", self.sample_size(rng, page, budget - (w.volume_bytes - start))
            )
            if rng.random() < 0.3:
                pages(f"base/{app_db}/{relfilenode}_fsm", 3 * page)
                pages(f"base/{app_db}/{relfilenode}_vm", page)
            relfilenode += rng.randint(1, 7)

    def logs(self, base: str, budget: int, rng: random.Random, app: str, vol: str) -> None:
        w = self.w
        start = w.volume_bytes
        w.mkdir(base)
        w.mkdir(f"{base}/tmp")
        day = self.recovery_point.replace(hour=0, minute=0, second=0)
        written_files = 0
        newest = None
        pool = _log_pool(rng, app)
        while w.volume_bytes - start < budget:
            size = self.sample_size(rng, left=budget - (w.volume_bytes - start))
            text = _log_text(rng, pool, day, size)
            if written_files < 3 or rng.random() < 0.8:
                rel = f"{base}/{app}/{app}-{day:%Y-%m-%d}.log"
                w.text(rel, text)
                newest = newest or rel.rpartition("/")[2]
            else:
                w.write(f"{base}/archive/{app}-{day:%Y-%m-%d}.log.gz",
                        gzip.compress(text.encode(), compresslevel=6, mtime=0))  # fmt: skip
            written_files += 1
            day -= timedelta(days=1)
        if newest:
            w.symlink(f"{base}/{app}/current.log", newest)

    def blobs(self, base: str, budget: int, rng: random.Random, app: str, vol: str) -> None:
        w = self.w
        start = w.volume_bytes
        w.mkdir(base)
        w.mkdir(f"{base}/incoming")
        kinds = _BLOB_KINDS.get(vol, _BLOB_KINDS["uploads"])
        month = self.recovery_point.replace(day=1, hour=0, minute=0, second=0)
        newest = f"{month:%Y}/{month:%m}"
        ext, head = kinds[0]
        w.write_random(f"{base}/shared/Übersicht {month:%Y}.{ext}", self.sample_size(rng), rng, head=head)
        while w.volume_bytes - start < budget:
            for _ in range(rng.randint(3, 40)):
                if w.volume_bytes - start >= budget:
                    break
                ext, head = rng.choice(kinds)
                u = f"{rng.getrandbits(128):032x}"
                name = f"{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}.{ext}"
                size = self.sample_size(rng, left=budget - (w.volume_bytes - start))
                w.write_random(f"{base}/{month:%Y}/{month:%m}/{name}", size, rng, head=head)
            month = (month - timedelta(days=1)).replace(day=1)
        w.symlink(f"{base}/latest", newest)

    def index(self, base: str, budget: int, rng: random.Random, app: str, vol: str) -> None:
        w = self.w
        start = w.volume_bytes
        w.mkdir(base)
        w.mkdir(f"{base}/snapshots")
        w.write(f"{base}/segments/write.lock", b"")
        n = 0
        while w.volume_bytes - start < budget:
            size = self.sample_size(rng, left=budget - (w.volume_bytes - start))
            w.write_random(f"{base}/segments/_{n:x}.cfs", size, rng, head=b"\x3f\xd7\x6c\x17")
            w.write_random(
                f"{base}/segments/_{n:x}.cfe", rng.randint(200, 600), rng, head=b"\x3f\xd7\x6c\x17"
            )
            w.write_random(f"{base}/segments/_{n:x}.si", rng.randint(300, 500), rng, head=b"\x3f\xd7\x6c\x17")
            n += 1
        generation = f"segments_{n:x}"
        w.text(f"{base}/segments/{generation}", "".join(f"_{k:x}\n" for k in range(n)))
        w.symlink(f"{base}/segments/current", generation)
        for k in range(rng.randint(1, 3)):
            w.write_random(f"{base}/translog/translog-{k + 1}.tlog", rng.randint(55, 4096), rng)
        w.text(f"{base}/translog/translog.ckp", json.dumps({"generation": n, "offset": 55}) + "\n")


def _vm_ip(planned: dict[str, Any]) -> str:
    """The address of an orchestrator's, service's or application's VM on its first network."""
    ip: str = planned["vm"]["networks"][0]["ip"]
    return ip


def _route(destination: str, gateway: str, subnet: str, metric: int) -> dict[str, Any]:
    return {"destination": destination, "gateway": gateway, "subnet": subnet, "metric": metric}


def _grant(grant: str, resource: str, action: str) -> bool:
    if grant == "*":
        return True
    want_resource, _, want_action = grant.partition(":")
    return want_resource in ("*", resource) and want_action in ("*", action)


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


_TIMES_OF_DAY: list[str] = []


def _log_pool(rng: random.Random, app: str) -> list[str]:
    """Log lines without their timestamp, to be sampled into files."""
    resources = ("orders", "users", "items", "invoices", "sessions", "reports")
    pool = []
    for _ in range(1024):
        message = rng.choice(_LOG_MESSAGES).format(
            r=rng.choice(resources), n=rng.randrange(1, 100000), ms=rng.randrange(1, 900)
        )
        pool.append(f"Z {rng.choice(_LOG_LEVELS):<5} [{app}] {message}\n")
    return pool


def _log_text(rng: random.Random, pool: list[str], day: datetime, size: int) -> str:
    """About `size` bytes of one day's log: sampled lines with ascending millisecond timestamps."""
    if not _TIMES_OF_DAY:
        _TIMES_OF_DAY.extend(f"{t // 3600:02d}:{t // 60 % 60:02d}:{t % 60:02d}" for t in range(86400))
    count = max(1, size // 84)
    lines = rng.choices(pool, k=count)
    stamps = sorted(rng.randrange(86_400_000) for _ in range(count))
    date = f"{day:%Y-%m-%d}T"
    times = _TIMES_OF_DAY
    return "".join(
        [f"{date}{times[t // 1000]}.{t % 1000:03d}{line}" for t, line in zip(stamps, lines, strict=True)]
    )


def _postgresql_conf(app: str, rng: random.Random) -> str:
    return (
        "# PostgreSQL configuration file (generated by the OmniCloud app template)\n"
        f"# application: {app}\n"
        "listen_addresses = '*'\n"
        "port = 5432\n"
        f"max_connections = {rng.choice((100, 200, 400))}\n"
        f"shared_buffers = {rng.choice((512, 1024, 2048))}MB\n"
        f"effective_cache_size = {rng.choice((2, 4, 8))}GB\n"
        "maintenance_work_mem = 256MB\n"
        "checkpoint_completion_target = 0.9\n"
        "wal_buffers = 16MB\n"
        "default_statistics_target = 100\n"
        "random_page_cost = 1.1\n"
        "effective_io_concurrency = 200\n"
        f"work_mem = {rng.choice((4, 8, 16))}MB\n"
        "wal_level = replica\n"
        "max_wal_size = 4GB\n"
        "min_wal_size = 1GB\n"
        "archive_mode = on\n"
        "archive_command = '/usr/local/bin/omni-wal-archive %p %f'\n"
        "log_timezone = 'UTC'\n"
        "timezone = 'UTC'\n"
        "lc_messages = 'en_US.UTF-8'\n"
        "datestyle = 'iso, mdy'\n"
        "default_text_search_config = 'pg_catalog.english'\n"
    )


_PG_HBA = """# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
host    all             all             10.0.8.0/22             scram-sha-256
host    replication     replicator      10.0.8.0/22             scram-sha-256
"""
