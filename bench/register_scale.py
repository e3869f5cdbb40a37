"""Peak memory and speed of `omni-recovery register-isos` on a set whose manifests list 1,000,000 files.

Run: python bench/register_scale.py [--files 1000000] [--isos 10] [--workdir DIR] [--keep]

Writing a million-file set through pycdlib would take far longer than registering it, so this
script writes the images itself: plain ISO 9660 with Rock Ridge names and modes (SUSP SP/ER, NM,
PX), which is what `omni_recovery.backupset.isofs` reads. The set has one system-core ISO (whose
recovery_index.db holds every component) and ISOS volume-data ISOs sharing FILES files (empty
files, 1,000 to a folder, so the images stay small: the catalog's cost is in the entries, not the
bytes). Manifests, backup_info and indexes are written with the project's own models.

Then, in the same run, beside a baseline:
  baseline  `psql \\copy` of the resulting omni.files rows (exported once to CSV) into a scratch
            table of the same server: the floor for just loading that many rows
  register  `omni-recovery register-isos --path SET` in a child process (the whole flow: Dagster
            runs, ingest, catalog, Parquet, PostgreSQL), its wall time, rows/s and peak RSS
            (the child's VmHWM, see timing.child_peak)
Goal from the issue: peak RSS under 1.5 GiB for 1,000,000 files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from psql_copy import psql, timed_psql
from timing import child_peak

from omni_recovery.backupset import layout
from omni_recovery.backupset.index_db import Component, RecoveryIndex, write_index
from omni_recovery.backupset.manifest import BackupInfo, IsoSetMember
from omni_recovery.db.schema import init_database
from omni_recovery.db.server import database_url, stop_embedded
from omni_recovery.settings import Settings

SECTOR = 2048
SET_ID = "scale"
EMPTY_SHA = hashlib.sha256(b"").hexdigest()
DATE7 = bytes([126, 11, 20, 2, 0, 0, 0])


def both16(v: int) -> bytes:
    return struct.pack("<H", v) + struct.pack(">H", v)


def both32(v: int) -> bytes:
    return struct.pack("<I", v) + struct.pack(">I", v)


def susp_px(mode: int) -> bytes:
    return b"PX" + bytes([36, 1]) + both32(mode) + both32(1) + both32(0) + both32(0)


def record(identifier: bytes, lba: int, size: int, *, is_dir: bool, system_use: bytes = b"") -> bytes:
    n = len(identifier)
    pad = b"\0" if n % 2 == 0 else b""
    body = (
        bytes([0])
        + both32(lba)
        + both32(size)
        + DATE7
        + bytes([2 if is_dir else 0, 0, 0])
        + both16(1)
        + bytes([n])
        + identifier
        + pad
        + system_use
    )
    length = 1 + len(body)
    if length > 255:
        raise ValueError(f"directory record too long for {identifier!r}")
    return bytes([length]) + body


@dataclass
class Node:
    name: str
    data: bytes | None = None  # None: a directory
    children: dict[str, Node] = field(default_factory=dict)
    lba: int = 0
    size: int = 0


def add(root: Node, path: str, data: bytes) -> None:
    parts = path.split("/")
    node = root
    for part in parts[:-1]:
        node = node.children.setdefault(part, Node(part))
    node.children[parts[-1]] = Node(parts[-1], data)


def _child_records(node: Node) -> list[bytes]:
    out = []
    for name in sorted(node.children):
        child = node.children[name]
        is_dir = child.data is None
        raw = name.encode()
        identifier = raw if is_dir else raw + b";1"
        su = b"NM" + bytes([5 + len(raw), 1, 0]) + raw + susp_px(0o40755 if is_dir else 0o100644)
        out.append(record(identifier, child.lba, child.size, is_dir=is_dir, system_use=su))
    return out


def _extent(records: list[bytes]) -> bytes:
    out = bytearray()
    for rec in records:
        room = SECTOR - len(out) % SECTOR
        if len(rec) > room:
            out += b"\0" * room
        out += rec
    out += b"\0" * (-len(out) % SECTOR)
    return bytes(out)


ER = b"ER" + bytes([8 + 10, 1, 10, 0, 0, 1]) + b"RRIP_1991A"
SP = b"SP" + bytes([7, 1, 0xBE, 0xEF, 0])


def write_iso(path: Path, files: dict[str, bytes]) -> None:
    """A Rock Ridge ISO 9660 image holding `files` (path → bytes)."""
    root = Node("")
    for p, data in files.items():
        add(root, p, data)
    dirs: list[tuple[Node, Node]] = []  # (dir, parent) breadth first

    def walk(node: Node, parent: Node) -> None:
        dirs.append((node, parent))
        for name in sorted(node.children):
            child = node.children[name]
            if child.data is None:
                walk(child, node)

    walk(root, root)
    # sizes of directory extents (LBAs do not change record lengths)
    for node, _ in dirs:
        dot = record(b"\0", 0, 0, is_dir=True, system_use=SP + ER if node is root else b"")
        node.size = len(_extent([dot, record(b"\1", 0, 0, is_dir=True), *_child_records(node)]))
    lba = 18
    for node, _ in dirs:
        node.lba = lba
        lba += node.size // SECTOR
    data_nodes: list[Node] = []
    for node, _ in dirs:
        for child in node.children.values():
            if child.data is not None:
                child.size = len(child.data)
                if child.size:
                    child.lba = lba
                    lba += -(-child.size // SECTOR)
                    data_nodes.append(child)
    total = lba
    with path.open("wb") as out:
        out.write(b"\0" * 16 * SECTOR)
        root_rec = record(b"\0", root.lba, root.size, is_dir=True)
        pvd = bytearray(SECTOR)
        pvd[0:8] = b"\x01CD001\x01\x00"
        pvd[8:40] = b" " * 32
        pvd[40:72] = b"OMNI-SCALE".ljust(32)
        pvd[80:88] = both32(total)
        pvd[120:124] = both16(1)
        pvd[124:128] = both16(1)
        pvd[128:132] = both16(SECTOR)
        pvd[156 : 156 + len(root_rec)] = root_rec
        pvd[881] = 1
        out.write(pvd)
        out.write(b"\xffCD001\x01" + b"\0" * (SECTOR - 7))
        for node, parent in dirs:
            dot = record(b"\0", node.lba, node.size, is_dir=True, system_use=SP + ER if node is root else b"")
            dotdot = record(b"\1", parent.lba, parent.size, is_dir=True)
            out.write(_extent([dot, dotdot, *_child_records(node)]))
        for child in data_nodes:
            assert child.data is not None
            out.write(child.data + b"\0" * (-len(child.data) % SECTOR))


def make_set(folder: Path, files: int, isos: int) -> None:
    folder.mkdir(parents=True)
    names = [layout.iso_filename(SET_ID, layout.SYSTEM_CORE, 1)] + [
        layout.iso_filename(SET_ID, layout.VOLUME_DATA, i + 1) for i in range(isos)
    ]
    info = BackupInfo(
        backup_set_id=SET_ID,
        created_at="2026-11-20T02:00:00Z",
        omnicloud_version="4.2.1",
        source_environment={"name": "scale"},
        iso_set=[
            IsoSetMember(n, layout.parse_iso_filename(n).kind, layout.parse_iso_filename(n).sequence)
            for n in names
        ],
        encryption={"cipher": "AES-256-GCM", "kdf": "scrypt", "kdf_params": {"n": 2, "r": 8, "p": 1}},
        signing={"algorithm": "ed25519", "key_id": "0" * 64},
    ).to_bytes()
    per_iso = -(-files // isos)
    volumes = [f"app{v:03d}/data" for v in range(max(1, files // 20_000))]
    components = [Component("system:core", "system", "core", None, None, "system-core", {})]
    components += [
        Component(f"volume:{v}", "volume", v, f"application:{v.split('/')[0]}", "standard", "volume-data", {})
        for v in volumes
    ]
    for seq, name in enumerate(names):
        entries: list[dict[str, object]] = []
        index_files: list[tuple[str, str]] = []
        data_files: dict[str, bytes] = {}
        if seq > 0:
            start, stop = (seq - 1) * per_iso, min(files, seq * per_iso)
            for i in range(start, stop):
                volume = volumes[i * len(volumes) // files]
                path = f"data/volumes/{volume}/files/d{i // 1000:05d}/f{i:07d}"
                data_files[path] = b""
                component = f"volume:{volume}"
                index_files.append((path, component))
                entries.append(
                    {
                        "path": path,
                        "size": 0,
                        "sha256": EMPTY_SHA,
                        "mode": 33188,
                        "component": component,
                    }
                )
        index_path = folder / f".{name}.db"
        write_index(
            index_path,
            RecoveryIndex(components=components if seq == 0 else [], files=index_files),
        )
        index = index_path.read_bytes()
        index_path.unlink()
        log = f"scale set {SET_ID}, {name}\n".encode()
        meta = {layout.BACKUP_INFO_PATH: info, layout.INDEX_DB_PATH: index, layout.RECOVERY_LOG_PATH: log}
        for path, data in meta.items():
            entries.append(
                {
                    "path": path,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "mode": 33188,
                    "component": None,
                }
            )
        kind = layout.parse_iso_filename(name)
        manifest = json.dumps(
            {
                "format": layout.FORMAT,
                "backup_set_id": SET_ID,
                "kind": kind.kind,
                "sequence": kind.sequence,
                "created_at": "2026-11-20T02:00:00Z",
                "files": entries,
            },
            separators=(",", ":"),
        ).encode()
        write_iso(folder / name, {layout.MANIFEST_PATH: manifest, **meta, **data_files})


def psql_baseline(url: str, workspace: Path, rows: int) -> float:
    """Time `psql \\copy` of the registered files rows into a scratch copy of omni.files."""
    csv_path = workspace / "files.csv"
    export = (
        f"\\copy (SELECT * FROM omni.files WHERE backup_set_id = '{SET_ID}') TO '{csv_path}' (FORMAT csv)"
    )
    psql(url, export)
    setup = (
        "SET client_min_messages = warning; DROP TABLE IF EXISTS omni.bench_files; "
        "CREATE TABLE omni.bench_files (LIKE omni.files INCLUDING ALL)"
    )
    psql(url, setup)
    elapsed, _ = timed_psql(url, f"\\copy omni.bench_files FROM '{csv_path}' (FORMAT csv)")
    psql(url, "DROP TABLE omni.bench_files")
    csv_path.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--isos", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="Keep the set and workspace.")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="omni-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    set_folder, workspace = work / "set", work / "ws"
    settings = Settings(workspace=workspace, database_url=os.environ.get("OMNI_RECOVERY_DATABASE_URL"))
    try:
        if not set_folder.exists():
            started = time.perf_counter()
            make_set(set_folder, args.files, args.isos)
            size = sum(p.stat().st_size for p in set_folder.iterdir())
            print(f"set of {args.files} files in {args.isos + 1} ISOs ({size / 2**20:.0f} MiB) "
                  f"written in {time.perf_counter() - started:.1f} s")  # fmt: skip
        url = database_url(settings)
        init_database(url)
        env = {**os.environ, "OMNI_RECOVERY_DATABASE_URL": url}
        cli = str(Path(sys.executable).parent / "omni-recovery")
        command = [cli, "register-isos", "--path", str(set_folder), "--workspace", str(workspace), "--quiet"]
        log = work / "register.log"
        with log.open("w") as out:
            wall, peak, code = child_peak(command, env, stdout=out, stderr=subprocess.STDOUT)
        if code != 0:
            raise SystemExit(f"register-isos failed:\n{log.read_text()}")
        print(log.read_text().rstrip())
        rows = args.files + 3 * (args.isos + 1)
        baseline = psql_baseline(url, workspace, rows)
        print()
        print(f"{'step':<46} {'wall s':>8} {'rows/s':>10}")
        label = "baseline: psql \\copy of the files rows alone"
        print(f"{label:<46} {baseline:>8.1f} {rows / baseline:>10,.0f}")
        print(f"{'register-isos (whole flow)':<46} {wall:>8.1f} {rows / wall:>10,.0f}")
        print(f"ratio register/psql-load: {wall / baseline:.1f}")
        print(f"peak RSS of register-isos: {peak / 2**20:.0f} MiB; goal < 1536 MiB: "
              f"{'met' if peak < 1.5 * 2**30 else 'NOT met'}")  # fmt: skip
    finally:
        if settings.database_url is None:
            stop_embedded(settings)
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
