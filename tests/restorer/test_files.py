"""restore_files: a whole backup set back onto a target root, byte for byte, verified, resumable."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from omni_recovery.backup.writer import create_backup_set
from omni_recovery.backupset.reader import DataKey, IsoReader, list_backup_set
from omni_recovery.backupset.signing import TrustedSigners, generate_signing_key, load_signing_key
from omni_recovery.errors import BackupSetError, DeadlineExceeded, IntegrityError, UnreadableError
from omni_recovery.restorer.files import CHUNK_CHECKS, ChunkCheck, RestoredFile, RestoreItem, restore_files
from omni_recovery.targets.driver import PARTIAL_SUFFIX, TargetRoot
from omni_recovery.validate import validate
from tests.backupset.conftest import DemoSet
from tests.checker.tamper import scattered_copy
from tests.restorer.conftest import PASSPHRASE, assert_same_tree, set_items, snapshot

BIG = "full-export"  # the demo's big streamed file, chunked over several volume-data ISOs


def big_item_path(items: list[RestoreItem]) -> str:
    return next(i.path for i in items if i.chunk_of and BIG in i.path)


def assert_refused(
    items: list[RestoreItem], key: DataKey, node: Path, parallel: int, match: str, named: RestoreItem
) -> None:
    """The restore fails with an IntegrityError matching `match` that names `named`'s ISO and stored
    path, and leaves neither that file nor any temporary file behind."""
    with pytest.raises(IntegrityError, match=match) as info:
        restore_files(items, TargetRoot(str(node)), key, parallel=parallel)
    assert (info.value.iso, info.value.path) == (named.iso_name, named.stored_path)
    assert not (node / named.path).exists()
    assert not [p for p in snapshot(node) if p.endswith(PARTIAL_SUFFIX)]


@pytest.mark.parametrize(
    ("parallel", "chunk_check"), [(1, "whole"), (2, "whole"), (1, "parts"), (2, "parts"), (2, "both")]
)
def test_restores_every_file_identically(
    demo_set: DemoSet, tmp_path: Path, parallel: int, chunk_check: ChunkCheck
):
    items, key = set_items(demo_set.output)
    chunked = [i for i in items if i.chunk_of]
    assert len({i.iso_name for i in chunked}) >= 2, "the fixture must spread a chunked file over ISOs"
    assert any(i.encryption for i in items) and any(i.type == "dir" for i in items)
    done: list[RestoredFile] = []
    progress: list[tuple[str, int]] = []
    summary = restore_files(
        items,
        TargetRoot(str(tmp_path / "node")),
        key,
        on_done=done.append,
        parallel=parallel,
        progress=lambda phase, n: progress.append((phase, n)),
        chunk_check=chunk_check,
    )
    assert_same_tree(demo_set.env, tmp_path / "node")
    logical_files = {i.path for i in items if i.type == "file"}
    assert sorted(d.path for d in done) == sorted(logical_files)
    assert summary.files == len(logical_files) and summary.skipped == 0
    assert summary.symlinks == sum(1 for i in items if i.type == "symlink")
    assert summary.bytes_written == sum(d.size for d in done) == sum(n for _, n in progress)
    big = next(d for d in done if BIG in d.path)
    assert len(big.isos) >= 2 and len(big.stored_paths) == len([i for i in chunked if i.path == big.path])


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_big_file_is_reported_as_it_is_copied_and_every_byte_once(
    demo_set: DemoSet, tmp_path: Path, parallel: int, monkeypatch: pytest.MonkeyPatch
):
    from omni_recovery.restorer import sources

    monkeypatch.setattr(sources, "PROGRESS_BYTES", 64 * 1024)
    items, key = set_items(demo_set.output)
    big = big_item_path(items)
    heard: list[tuple[str, int | str]] = []
    summary = restore_files(
        items,
        TargetRoot(str(tmp_path / "node")),
        key,
        parallel=parallel,
        progress=lambda phase, amount: heard.append((phase, amount)),
        on_done=lambda done: heard.append(("done", done.path)),
    )
    restored = [amount for phase, amount in heard if phase == "restore"]
    assert sum(map(int, restored)) == summary.bytes_written, "every restored byte reported once"
    before_big = heard[: heard.index(("done", big))]
    big_size = next(i.logical_size for i in items if i.path == big)
    assert big_size and sum(int(a) for p, a in before_big if p == "restore") >= big_size // 2, (
        "most of the big file was reported while it was copied, before it was whole"
    )


def test_memory_target_receives_files_and_folders(demo_set: DemoSet):
    items, key = set_items(demo_set.output)
    items = [i for i in items if i.type != "symlink"]  # memory:// holds no symlinks
    root = TargetRoot(f"memory://omni-restore-{uuid.uuid4().hex}/node")
    summary = restore_files(items, root, key, parallel=2)
    listing = root.listing()
    for rel, (kind, _mode, content, _mtime) in snapshot(demo_set.env).items():
        if kind == "file":
            assert root.read_bytes(rel) == content, rel
        elif kind == "dir":
            assert listing[rel].type == "dir", rel
    assert summary.files == len({i.path for i in items if i.type == "file"})
    assert not [p for p in listing if p.endswith(PARTIAL_SUFFIX)]


def flip_byte(set_copy: Path, stored_path_match: str, *, at: int = 50) -> tuple[str, str]:
    """Flip one byte of the first stored file whose path contains `stored_path_match`; (iso, path)."""
    for member in list_backup_set(str(set_copy)):
        with IsoReader(member.url) as reader:
            entry = next(
                (e for e in reader.manifest.files if stored_path_match in e.path and e.size > at), None
            )
            if entry is None:
                continue
            offset = reader.listing[entry.path].offset
        with open(member.url.removeprefix("file://"), "r+b") as fh:
            fh.seek(offset + at)
            byte = fh.read(1)
            fh.seek(offset + at)
            fh.write(bytes([byte[0] ^ 0xFF]))
        return member.name.filename, entry.path
    raise AssertionError(f"no stored file matches {stored_path_match}")


@pytest.mark.parametrize(
    "match", ["chunk-part", "secrets.json", "/base/"], ids=["chunk-part", "sealed", "plain"]
)
def test_flipped_byte_names_iso_and_path_and_leaves_no_file(demo_set: DemoSet, tmp_path: Path, match: str):
    copy = tmp_path / "set"
    shutil.copytree(demo_set.output, copy)
    if match == "chunk-part":  # the big file's second part, in another ISO than its first
        match = next(i.stored_path for i in set_items(copy)[0] if BIG in i.path and i.chunk_index == 1)
    iso, stored = flip_byte(copy, match)
    items, key = set_items(copy)
    item = next(i for i in items if i.stored_path == stored)
    for parallel, chunk_check in itertools.product([1, 2], CHUNK_CHECKS):
        node = tmp_path / f"node{parallel}{chunk_check}"
        with pytest.raises(IntegrityError) as info:
            restore_files(items, TargetRoot(str(node)), key, parallel=parallel, chunk_check=chunk_check)
        assert (info.value.iso, info.value.path) == (iso, stored)
        assert "sha256 is" in str(info.value) and item.path in str(info.value)
        assert not (node / item.path).exists()
        assert not [p for p in snapshot(node) if p.endswith(PARTIAL_SUFFIX)]


@pytest.mark.parametrize("parallel", [1, 2])
def test_an_image_cut_short_inside_a_file_names_it_and_leaves_no_file(
    demo_set: DemoSet, tmp_path: Path, parallel: int
):
    copy = tmp_path / "set"
    shutil.copytree(demo_set.output, copy)
    items, key = set_items(copy)
    last = max((i for i in items if i.chunk_of and BIG in i.path), key=lambda i: i.chunk_index or 0)
    assert last.extent_offset is not None
    os.truncate(last.iso_url.removeprefix("file://"), last.extent_offset + last.size // 2)
    assert_refused(items, key, tmp_path / "node", parallel, "the image ends at byte", last)


def test_inconsistent_requests_write_nothing(demo_set: DemoSet, tmp_path: Path):
    items, key = set_items(demo_set.output)
    node = tmp_path / "node"
    missing_part = [i for i in items if not (BIG in i.path and i.chunk_index == 1)]
    with pytest.raises(BackupSetError, match=r"missing \[1\]"):
        restore_files(missing_part, TargetRoot(str(node)), key)
    with pytest.raises(BackupSetError, match="no passphrase"):
        restore_files(items, TargetRoot(str(node)), None)
    twice = [*items, dataclasses.replace(next(i for i in items if i.type == "file" and not i.chunk_of))]
    with pytest.raises(BackupSetError, match="restored twice"):
        restore_files(twice, TargetRoot(str(node)), key)
    assert os.listdir(node) == []


class Killed(Exception):
    pass


def in_place(node: Path, items: list[RestoreItem]) -> dict[str, int]:
    """path → inode of every file of `items` under its final name on `node`."""
    files = {i.path for i in items if i.type == "file"}
    return {path: os.stat(node / path).st_ino for path in files if (node / path).exists()}


def test_resume_after_interruption_redoes_no_recorded_file(demo_set: DemoSet, tmp_path: Path):
    items, key = set_items(demo_set.output)
    node = tmp_path / "node"
    recorded: dict[str, int] = {}  # path → inode, as the recovery database would record it

    def record_then_die(done: RestoredFile) -> None:
        if len(recorded) == 100:
            raise Killed
        recorded[done.path] = os.stat(node / done.path).st_ino

    with pytest.raises(Killed):
        restore_files(items, TargetRoot(str(node)), key, on_done=record_then_die, parallel=2)
    assert len(recorded) == 100
    first_pass = dict(recorded)
    # a recorded file that went missing or was truncated since is restored again
    victim = sorted(first_pass)[0]
    with open(node / victim, "r+b") as fh:
        fh.truncate(max(0, (node / victim).stat().st_size - 1))
    del first_pass[victim]
    # renamed into place, verified, but not recorded when the restore died: kept as they are, but one
    # whose bytes changed since (same size) is restored again
    unrecorded = {p: i for p, i in in_place(node, items).items() if p not in recorded}
    assert len(unrecorded) > 1, "files in flight were finished and put in place, unrecorded"
    changed = next(p for p in sorted(unrecorded) if (node / p).stat().st_size)
    with open(node / changed, "r+b") as fh:
        byte = fh.read(1)
        fh.seek(0)
        fh.write(bytes([byte[0] ^ 1]))
    inode_of_changed = unrecorded.pop(changed)

    again: list[str] = []

    def record(done: RestoredFile) -> None:
        again.append(done.path)
        recorded[done.path] = os.stat(node / done.path).st_ino

    summary = restore_files(
        items, TargetRoot(str(node)), key, already_done=recorded.__contains__, on_done=record, parallel=2
    )
    assert_same_tree(demo_set.env, node)
    assert not set(again) & set(first_pass), "a verified, recorded file was restored again"
    assert victim in again
    assert summary.skipped == len(first_pass) + len(unrecorded)
    assert summary.files == len(again) - len(unrecorded), "files kept are reported, not counted as written"
    assert set(unrecorded) <= set(again), "files found whole are reported, for the caller to record"
    for path, inode in (first_pass | unrecorded).items():
        assert os.stat(node / path).st_ino == inode, path
    assert os.stat(node / changed).st_ino != inode_of_changed
    assert set(recorded) == {i.path for i in items if i.type == "file"}


KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from omni_recovery.restorer import copying
    from omni_recovery.restorer.files import restore_files
    from omni_recovery.targets import driver
    from tests.restorer.conftest import set_items

    set_path, node, journal, big = sys.argv[1:5]
    copying.PIPE_BLOCK = 16384
    write = driver.PartialFile.write

    def stalling_write(self, data):  # the big file stops past 64 KiB, so the kill lands inside it
        while self.relpath == big and self.size > 64 * 1024:
            time.sleep(1)
        return write(self, data)

    send = driver.PartialFile.send_from

    def stalling_send(self, *args):  # the same, when the kernel copies it
        while self.relpath == big and self.size > 64 * 1024:
            time.sleep(1)
        return send(self, *args)

    driver.PartialFile.write = stalling_write
    driver.PartialFile.send_from = stalling_send
    items, key = set_items(Path(set_path))
    with open(journal, "a") as out:
        def record(done):
            out.write(done.path + "\\n")
            out.flush()
            os.fsync(out.fileno())
        restore_files(items, driver.TargetRoot(node), key, on_done=record, parallel=2, block_size=16384)
    """
)


def test_sigkill_mid_file_then_rerun_gives_the_same_tree(demo_set: DemoSet, tmp_path: Path):
    node, journal = tmp_path / "node", tmp_path / "journal"
    items, key = set_items(demo_set.output)
    big = big_item_path(items)
    partial = node / os.path.dirname(big) / f".{os.path.basename(big)}{PARTIAL_SUFFIX}"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(demo_set.output), str(node), str(journal), big],
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        deadline = time.monotonic() + 120
        while not (partial.exists() and partial.stat().st_size > 64 * 1024):
            assert proc.poll() is None, "the restore ended before it could be killed"
            assert time.monotonic() < deadline, "the big file's partial never appeared"
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert partial.exists() and not (node / big).exists()
    recorded = set(journal.read_text().split()) if journal.exists() else set()
    assert big not in recorded
    inodes = {p: os.stat(node / p).st_ino for p in recorded}

    again: list[str] = []
    restore_files(
        items,
        TargetRoot(str(node)),
        key,
        already_done=recorded.__contains__,
        on_done=lambda d: again.append(d.path),
    )
    assert_same_tree(demo_set.env, node)
    assert big in again and not set(again) & recorded
    assert all(os.stat(node / p).st_ino == i for p, i in inodes.items())


def test_large_unchunked_files_copied_and_hashed_by_two_threads(
    demo_set: DemoSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from omni_recovery.restorer import copying, scheduling

    monkeypatch.setattr(scheduling, "PIPED_MIN_SIZE", 8192)  # every PostgreSQL page file is piped
    monkeypatch.setattr(copying, "PIPE_BLOCK", 4096)
    monkeypatch.setattr(copying, "PIPE_DEPTH", 2)  # the copy waits for the hash
    items, key = set_items(demo_set.output)
    restore_files(items, TargetRoot(str(tmp_path / "node")), key, parallel=2, block_size=4096)
    assert_same_tree(demo_set.env, tmp_path / "node")

    copy = tmp_path / "set"
    shutil.copytree(demo_set.output, copy)
    iso, stored = flip_byte(copy, "/base/", at=6000)
    items, key = set_items(copy)
    item = next(i for i in items if i.stored_path == stored)
    assert item.size >= 8192 and item.chunk_of is None
    node = tmp_path / "node2"
    with pytest.raises(IntegrityError, match="sha256 is") as info:
        restore_files(items, TargetRoot(str(node)), key, parallel=2, block_size=4096)
    assert (info.value.iso, info.value.path) == (iso, stored)
    assert not (node / item.path).exists()
    assert not [p for p in snapshot(node) if p.endswith(PARTIAL_SUFFIX)]


@pytest.mark.parametrize("parallel", [1, 2])
def test_intact_parts_with_a_wrong_logical_digest_are_refused(
    demo_set: DemoSet, tmp_path: Path, parallel: int
):
    items, key = set_items(demo_set.output)
    wrong = "0" * 64
    items = [
        dataclasses.replace(i, logical_sha256=wrong) if BIG in i.path and i.chunk_of else i for i in items
    ]
    first = next(i for i in items if BIG in i.path and i.chunk_index == 0)
    match = "although every part matches its own sha256"
    assert_refused(items, key, tmp_path / "node", parallel, match, first)


def test_auto_parallel_counts_the_cpus_this_process_may_use():
    from omni_recovery.restorer.files import MAX_PARALLEL, auto_parallel

    usable = os.sched_getaffinity(0)
    assert auto_parallel() == min(MAX_PARALLEL, len(usable))
    os.sched_setaffinity(0, {min(usable)})
    try:
        assert auto_parallel() == 1
    finally:
        os.sched_setaffinity(0, usable)


def test_isos_read_through_fsspec_when_not_local(demo_set: DemoSet, tmp_path: Path):
    import fsspec

    fs = fsspec.filesystem("memory")
    remote = f"/omni-isos-{uuid.uuid4().hex}"
    for member in list_backup_set(str(demo_set.output)):
        local = member.url.removeprefix("file://")
        fs.pipe(f"{remote}/{os.path.basename(local)}", Path(local).read_bytes())
    try:
        items, key = set_items(f"memory://{remote}")
        assert all(i.iso_url.startswith("memory://") for i in items)
        restore_files(items, TargetRoot(str(tmp_path / "node")), key, parallel=2)
        assert_same_tree(demo_set.env, tmp_path / "node")
    finally:
        fs.rm(remote, recursive=True)


@pytest.mark.parametrize(("parallel", "chunk_check"), [(1, "whole"), (2, "whole"), (2, "parts")])
def test_a_restore_past_its_deadline_stops_and_leaves_no_partial_file(
    demo_set: DemoSet, tmp_path: Path, parallel: int, chunk_check: ChunkCheck
):
    items, key = set_items(demo_set.output)
    node = tmp_path / "node"
    done: list[RestoredFile] = []
    with pytest.raises(DeadlineExceeded, match=r"ran out while restoring \S+ \(from \S+\.iso: data/"):
        restore_files(
            items,
            TargetRoot(str(node)),
            key,
            parallel=parallel,
            chunk_check=chunk_check,
            on_done=done.append,
            deadline=time.monotonic() - 1,
        )
    listing = snapshot(node)
    assert not [p for p in listing if p.endswith(PARTIAL_SUFFIX)]
    written = {p for p, (kind, _mode, _content, _mtime) in listing.items() if kind == "file"}
    assert written == {d.path for d in done}, "only files reported as restored are there"
    assert all(d.size == 0 for d in done), "no file with content was restored after the deadline"


def test_symlinks_from_several_isos_that_lead_out_together_are_refused(tmp_path: Path):
    def link(iso: str, rel: str, target: str) -> RestoreItem:
        stored = f"data/volumes/a/v/files/{rel}"
        return RestoreItem(
            "file:///x.iso", iso, stored, f"volumes/a/v/files/{rel}", type="symlink", target=target
        )

    deep = link("s_volume-data_001.iso", "a/b/c/d/e/f/s", "../../../../../../z")
    esc = link("s_volume-data_002.iso", "esc", "a/b/c/d/e/f/s/../../../../../../../etc/shadow")
    with pytest.raises(BackupSetError, match="passes through are followed") as caught:
        restore_files([deep, esc], TargetRoot(str(tmp_path / "node")), None)
    assert caught.value.path == "data/volumes/a/v/files/esc"
    assert not (tmp_path / "node").exists() or not any((tmp_path / "node").rglob("*"))


FULL_DISK_SCRIPT = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    from omni_recovery.restorer.files import restore_files
    from omni_recovery.targets.driver import TargetError, TargetRoot
    from tests.restorer.conftest import set_items

    set_path, node, limit, parallel = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    items, key = set_items(Path(set_path))
    done = []
    # The kernel refuses writes past `limit` bytes in any one file (EFBIG), as a full disk refuses them.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        restore_files(items, TargetRoot(node), key, parallel=parallel, on_done=lambda d: done.append(d.path))
    except TargetError as exc:
        print(json.dumps({"error": str(exc), "path": exc.path, "done": done}))
        sys.exit(3)
    """
)


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_target_that_takes_no_more_bytes_fails_naming_the_file_and_leaves_no_partial(
    demo_set: DemoSet, tmp_path: Path, parallel: int
):
    node, limit = tmp_path / "node", 256 << 10
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(demo_set.output), str(node), str(limit), str(parallel)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    failure = json.loads(proc.stdout)
    assert "write failed" in failure["error"] and "File too large" in failure["error"], failure
    failed = failure["path"].replace(PARTIAL_SUFFIX, "").replace("/.", "/")
    assert (demo_set.env / failed).stat().st_size > limit, "the file that did not fit is named"
    assert not (node / failed).exists()
    assert not [p for p in snapshot(node) if p.endswith(PARTIAL_SUFFIX)]
    present = {p for p, entry in snapshot(node).items() if entry[0] == "file"}
    assert set(failure["done"]) <= present
    for path in present:  # the largest file goes first: whatever finished beside it is whole
        assert (node / path).read_bytes() == (demo_set.env / path).read_bytes(), path


@pytest.mark.parametrize("parallel", [1, 2])
def test_an_image_that_cannot_be_read_names_it_and_leaves_no_file(
    demo_set: DemoSet, tmp_path: Path, parallel: int
):
    items, key = set_items(demo_set.output)
    item = next(i for i in items if i.type == "file" and i.size and not i.chunk_of and not i.encryption)
    unreadable = tmp_path / "unreadable.iso"  # a folder: it opens, and every read of it fails (EISDIR)
    unreadable.mkdir()
    items = [dataclasses.replace(i, iso_url=str(unreadable)) if i == item else i for i in items]
    node = tmp_path / "node"
    with pytest.raises(UnreadableError, match=r"cannot read the image at byte \d+: .*Is a directory") as info:
        restore_files(items, TargetRoot(str(node)), key, parallel=parallel)
    assert (info.value.iso, info.value.path) == (item.iso_name, item.stored_path)
    assert not (node / item.path).exists()
    assert not [p for p in snapshot(node) if p.endswith(PARTIAL_SUFFIX)]


def test_names_the_format_allows_round_trip_up_to_the_length_limit(demo_env: Path, tmp_path: Path):
    env = tmp_path / "env"
    shutil.copytree(demo_env, env, symlinks=True)
    files = next(p for p in (env / "volumes").rglob("files") if p.is_dir())
    names = ["x" * 255, "漢" * 85, "a\nb.txt", " lead space", "-dash", "tab\there", "ü ñ;*?", "sub dir/inner"]
    for index, name in enumerate(names):
        (files / name).parent.mkdir(parents=True, exist_ok=True)
        (files / name).write_bytes(f"{index}".encode() * 1000)
    generate_signing_key(tmp_path / "k.key")
    create_backup_set(
        env, str(tmp_path / "set"), signing_key=load_signing_key(tmp_path / "k.key"), passphrase=PASSPHRASE
    )
    report = validate(str(tmp_path / "set"), TrustedSigners.from_specs([f"{tmp_path}/k.key.pub"]), PASSPHRASE)
    assert report.passed, report.to_text()
    items, key = set_items(tmp_path / "set")
    restore_files(items, TargetRoot(str(tmp_path / "node")), key, parallel=2)
    assert_same_tree(env, tmp_path / "node")


@pytest.mark.parametrize("parallel", [1, 2])
def test_multi_extent_files_with_sections_out_of_order_are_validated_and_restored_identically(
    demo_set: DemoSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: int
):
    from omni_recovery.restorer import copying, scheduling

    monkeypatch.setattr(scheduling, "PIPED_MIN_SIZE", 8192)  # large files piped, read a block at a time
    monkeypatch.setattr(copying, "PIPE_BLOCK", 3000)  # blocks that straddle the sections' boundary
    scattered = scattered_copy(demo_set.output, tmp_path / "set")
    items, key = set_items(tmp_path / "set")
    kinds = {(i.encryption is not None, i.chunk_of is not None) for i in items if i.stored_path in scattered}
    assert len(scattered) >= 6 and len(kinds) >= 2, (scattered, kinds)
    assert all(len(i.extents or ()) == 2 for i in items if i.stored_path in scattered)
    report = validate(str(tmp_path / "set"), demo_set.trusted, PASSPHRASE, deep=True)
    assert report.passed, report.to_text()
    restore_files(items, TargetRoot(str(tmp_path / "node")), key, parallel=parallel, block_size=4096)
    assert_same_tree(demo_set.env, tmp_path / "node")


def test_big_files_from_local_images_are_copied_by_the_kernel_and_hashed_from_the_file(
    demo_set: DemoSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from omni_recovery.restorer import copying
    from omni_recovery.targets import partial

    monkeypatch.setattr(copying, "PIPE_BLOCK", 5000)  # blocks that start off a page boundary
    written: dict[str, list[str]] = {}
    for name in ("write", "send_from", "written"):
        method = getattr(partial.PartialFile, name)

        def spy(self: partial.PartialFile, *args: object, _method=method, _name=name) -> object:
            written.setdefault(self.relpath, []).append(_name)
            return _method(self, *args)

        monkeypatch.setattr(partial.PartialFile, name, spy)
    items, key = set_items(demo_set.output)
    big = big_item_path(items)
    restore_files(items, TargetRoot(str(tmp_path / "node")), key, parallel=2)
    assert_same_tree(demo_set.env, tmp_path / "node")
    assert "write" not in written[big] and {"send_from", "written"} <= set(written[big])


def test_an_unreadable_image_under_a_big_file_names_it_and_leaves_no_file(
    demo_set: DemoSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from omni_recovery.restorer import scheduling

    monkeypatch.setattr(scheduling, "PIPED_MIN_SIZE", 8192)  # the file is piped (copied by the kernel)
    items, key = set_items(demo_set.output)
    item = next(
        i for i in items if i.type == "file" and i.size > 8192 and not i.chunk_of and not i.encryption
    )
    unreadable = tmp_path / "unreadable.iso"  # a folder: it opens, and every read of it fails
    unreadable.mkdir()
    items = [dataclasses.replace(i, iso_url=str(unreadable)) if i == item else i for i in items]
    node = tmp_path / "node"
    with pytest.raises(UnreadableError, match=r"cannot read the image at byte \d+: ") as info:
        restore_files(items, TargetRoot(str(node)), key, parallel=2)
    assert (info.value.iso, info.value.path) == (item.iso_name, item.stored_path)
    assert not (node / item.path).exists()
    assert not [p for p in snapshot(node) if p.endswith(PARTIAL_SUFFIX)]
