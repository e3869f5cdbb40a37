"""What machine a node's root is on: its cores, memory, disks and NICs, read from /proc and /sys.

`read_hardware(url, access)` reads a node's machine: this one for a `file://` root (the files read
directly), the host of an `ssh://` root through the pinned-host-key session the restore itself uses,
by one read-only command (`cat` of the same files). Cores are the processors /proc/cpuinfo lists,
memory its MemTotal, disks the block devices of /sys/block (size, and model and serial where /sys
has them; loop, RAM and zram devices are not disks), NICs the interfaces of /sys/class/net with a
unicast MAC (name, MAC, link state). `with_hardware(inventory, found)` is the inventory with each
scanned node's figures replaced by what was found, for the operator to complete or accept.

What can go wrong: a root of another kind (an fsspec URL) has no machine to read; an SSH account
that may not run a command, or a machine without /proc, gives no figures: each is a HardwareError
naming the root, and the scan goes on without that node's figures.
"""

from __future__ import annotations

import dataclasses
import glob
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from omni_recovery.adapt.inventory_model import Inventory, InventoryDisk, InventoryNic, inventory_to_yaml
from omni_recovery.adapt.scan import access_of
from omni_recovery.errors import RecoveryError
from omni_recovery.targets.ssh_session import SshAccess, SshUrl, asyncssh, run_on_loop, session_for
from omni_recovery.urls import is_ssh_url
from omni_recovery.whole_file import write_text_whole

FILES = (
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/sys/block/*/size",
    "/sys/block/*/device/model",
    "/sys/block/*/device/serial",
    "/sys/block/*/serial",
    "/sys/class/net/*/address",
    "/sys/class/net/*/operstate",
)
SEPARATOR = "\x1e"  # begins each file's name in the command's output; no /proc or /sys text has it
# One read-only command: each readable file of FILES, its name after SEPARATOR on a line, then its text.
COMMAND = (
    f"for f in {' '.join(FILES)}; do "
    f'[ -f "$f" ] && [ -r "$f" ] && printf \'\\036%s\\n\' "$f" && cat -- "$f" 2>/dev/null; done'
)
NOT_DISKS = ("loop", "ram", "zram")
SECTOR = 512  # /sys/block/*/size counts 512-byte sectors whatever the device's own sector size
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class HardwareError(RecoveryError):
    """A node's machine could not be read."""


@dataclass(frozen=True)
class Disk:
    device: str
    size_bytes: int
    model: str = ""
    serial: str = ""


@dataclass(frozen=True)
class Nic:
    name: str
    mac: str
    link: str  # /sys's operstate: up, down, unknown...


@dataclass(frozen=True)
class Hardware:
    cores: int
    memory_mib: int
    disks: tuple[Disk, ...]
    nics: tuple[Nic, ...]


def read_hardware(url: str, access: SshAccess | None) -> Hardware:
    """The machine `url` (a node's root) is on, read from its /proc and /sys."""
    if url.startswith("file://"):
        return parse_hardware(read_local_files(), url)
    if is_ssh_url(url) and access is not None:
        return parse_hardware(_read_remote_files(url, access), url)
    raise HardwareError(f"{url}: not a root on a machine (file:// or ssh://): no hardware to read")


def read_local_files() -> dict[str, str]:
    """The text of each readable file of FILES on this machine, by path."""
    found = {}
    for pattern in FILES:
        for path in sorted(glob.glob(pattern)):
            try:
                with open(path, encoding="utf-8", errors="replace") as file:
                    found[path] = file.read()
            except OSError:
                continue  # as the remote command skips a file it may not read
    return found


def _read_remote_files(url: str, access: SshAccess) -> dict[str, str]:
    parsed = SshUrl.parse(url)
    session = session_for(parsed, access, parsed.path)
    try:
        result = run_on_loop(session.conn.run(COMMAND, check=False))
    except asyncssh.ChannelOpenError as exc:  # a host that serves SFTP only
        raise HardwareError(
            f"{url}: the host would not run `cat` of /proc and /sys: it refuses commands to this account "
            f"(SFTP only: {exc.reason}); fill in the node's figures by hand"
        ) from exc
    except (asyncssh.Error, OSError) as exc:  # the connection dropped
        raise HardwareError(f"{url}: the host would not run `cat` of /proc and /sys: {exc}") from exc
    if result.exit_status not in (0, 1):  # 1: the last pattern matched no readable file
        said = str(result.stderr or "").strip().splitlines()[:1]
        raise HardwareError(f"{url}: the host would not run `cat` of /proc and /sys: {' '.join(said)}")
    found = {}
    for record in str(result.stdout or "").split(SEPARATOR)[1:]:
        path, _, text = record.partition("\n")
        found[path] = text
    if not found:  # sshd's ForceCommand internal-sftp runs an SFTP server instead, which says nothing
        raise HardwareError(
            f"{url}: the host would not run `cat` of /proc and /sys: it answered nothing (a host that "
            "serves SFTP only, as sshd's ForceCommand internal-sftp does); fill in the node's figures by hand"
        )
    return found


def parse_hardware(files: dict[str, str], url: str) -> Hardware:
    """The figures in the texts of FILES (by path) read on one machine."""
    cpuinfo, meminfo = files.get("/proc/cpuinfo", ""), files.get("/proc/meminfo", "")
    cores = sum(1 for line in cpuinfo.splitlines() if re.match(r"processor\s*:", line))
    memory = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE)
    if not cores or memory is None:
        raise HardwareError(f"{url}: /proc/cpuinfo or /proc/meminfo gave no figures")
    return Hardware(cores, int(memory.group(1)) // 1024, _disks(files), _nics(files))


def _disks(files: dict[str, str]) -> tuple[Disk, ...]:
    disks = []
    for path, text in files.items():
        found = re.fullmatch(r"/sys/block/([^/]+)/size", path)
        if found is None or found.group(1).startswith(NOT_DISKS) or not text.strip().isdigit():
            continue
        name = found.group(1)
        size = int(text) * SECTOR
        if size:
            model = files.get(f"/sys/block/{name}/device/model", "").strip()
            serial = files.get(f"/sys/block/{name}/device/serial") or files.get(
                f"/sys/block/{name}/serial", ""
            )
            disks.append(Disk(name, size, model, serial.strip()))
    return tuple(disks)


def _nics(files: dict[str, str]) -> tuple[Nic, ...]:
    nics = []
    for path, text in files.items():
        found = re.fullmatch(r"/sys/class/net/([^/]+)/address", path)
        mac = text.strip().lower()
        if found is None or not _MAC.match(mac) or int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
            continue  # loopback, and interfaces without an Ethernet address of their own
        name = found.group(1)
        nics.append(Nic(name, mac, files.get(f"/sys/class/net/{name}/operstate", "unknown").strip()))
    return tuple(nics)


def with_hardware(inventory: Inventory, found: dict[str, Hardware]) -> Inventory:
    """The inventory with the figures of each node in `found` (by name) as read; other nodes as they were.
    A disk under 1 GiB is left out (the inventory counts whole GiB)."""
    nodes = []
    for node in inventory.nodes:
        hardware = found.get(node.name)
        if hardware is not None:
            disks = tuple(
                InventoryDisk(d.device, d.size_bytes >> 30, d.model, d.serial)
                for d in hardware.disks
                if d.size_bytes >> 30
            )
            node = dataclasses.replace(
                node,
                cpu_cores=hardware.cores,
                memory_mib=hardware.memory_mib,
                disks=disks or node.disks,
                nics=tuple(InventoryNic(n.name, n.mac) for n in hardware.nics) or node.nics,
            )
        nodes.append(node)
    return dataclasses.replace(inventory, nodes=tuple(nodes))


def scan_hardware(inventory: Inventory, ssh_identity: str | None = None) -> dict[str, Hardware | str]:
    """Each node's machine by node name: its figures, or what kept them from being read."""
    found: dict[str, Hardware | str] = {}
    for node in inventory.nodes:
        try:
            found[node.name] = read_hardware(node.root, access_of(node.ssh, ssh_identity))
        except RecoveryError as exc:
            found[node.name] = str(exc)
    return found


def write_inventory(path: Path, inventory: Inventory) -> None:
    """`inventory` as YAML at `path`, written whole (a temporary name, then renamed into place), marked
    with the time of the scan (`scanned_at`): plan-generate compares its nodes with their machines."""
    scanned = dataclasses.replace(inventory, scanned_at=datetime.now(UTC).isoformat(timespec="seconds"))
    write_text_whole(path, inventory_to_yaml(scanned))


def describe(hardware: Hardware) -> str:
    """One line an operator reads: cores, memory, each disk and each NIC."""
    disks = ", ".join(
        f"{d.device} {d.size_bytes / 2**30:.0f} GiB" + "".join(f" {x}" for x in (d.model, d.serial) if x)
        for d in hardware.disks
    )
    nics = ", ".join(f"{n.name} {n.mac} {n.link}" for n in hardware.nics)
    return (
        f"{hardware.cores} cores, {hardware.memory_mib} MiB memory; "
        f"disks: {disks or 'none'}; NICs: {nics or 'none'}"
    )
