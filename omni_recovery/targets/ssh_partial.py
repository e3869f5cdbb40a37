"""A file written to an SSH root: under its temporary name over SFTP (or, for a big file, by OpenSSH's
ssh: `StreamedPartialFile`), verified on the target, then renamed into place.

Writes are pipelined: up to IN_FLIGHT of one file are outstanding at once (asyncssh splits each
into parallel requests), on the SFTP channel the file took in turn. `commit` sets mode and mtime,
fsyncs and takes the target's own digest of the temporary file (its sha256sum where the account may
run one, else the file read back) in one round trip, and renames only when that digest and size
equal those of the bytes sent.

What can go wrong: a write or the rename refused or the connection dropped (TargetError naming the
root and the path, the temporary file removed where the connection still allows); bytes that
landed other than they were sent (TargetError; nothing renamed into place).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import stat
import subprocess
from collections import deque
from concurrent.futures import Future
from typing import TYPE_CHECKING

from omni_recovery.targets.base import TargetError
from omni_recovery.targets.partial import PartialFile
from omni_recovery.targets.ssh_session import (  # asyncssh imported there, without its warning
    asyncssh,
    digest_on_target,
    reason,
    run_on_loop,
    submit,
)

if TYPE_CHECKING:
    from omni_recovery.targets.ssh import SshRoot
    from omni_recovery.targets.ssh_stream import OpenSshChannel

IN_FLIGHT = 8  # writes of one file outstanding at once


class SshPartialFile(PartialFile):
    """A file written over SFTP under its temporary name, verified on the target before its rename."""

    root: SshRoot

    def _open(self) -> None:
        self.sftp = self.root.session.channel()
        self.digest = hashlib.sha256()
        self.in_flight: deque[Future[None]] = deque()
        self.handle: asyncssh.SFTPClientFile | None = self.root._call(
            self._create(), "cannot create the temporary file", self.partial
        )

    async def _create(self) -> asyncssh.SFTPClientFile:
        return await self.sftp.open(self._partial_full, "w+b")  # read back before it is closed

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Send `data` after what was written; up to IN_FLIGHT writes are outstanding at once."""
        payload = bytes(data)  # the caller reuses its buffer as soon as this returns
        self.digest.update(payload)
        self.in_flight.append(submit(self._write_at(payload, self.size)))
        self.size += len(payload)
        while len(self.in_flight) > IN_FLIGHT:
            self._wait(self.in_flight.popleft())
        return len(payload)

    async def _write_at(self, payload: bytes, offset: int) -> None:
        assert self.handle is not None
        if self.root.session.pace is not None:
            await self.root.session.pace.take(len(payload))
        await self.handle.write(payload, offset)

    def _wait(self, write: Future[None]) -> None:
        try:
            write.result()
        except (OSError, asyncssh.Error) as exc:
            raise self.root.error(f"write failed: {reason(exc)}", self.partial) from exc

    def commit(
        self, *, mode: int | None = None, mtime: float | None = None, sync_folder: bool = True
    ) -> None:
        """Wait for the writes, set mode and mtime, fsync, check the target's digest, rename into place."""
        try:
            while self.in_flight:
                self._wait(self.in_flight.popleft())
            self.root._call(self._finish(mode, mtime), "cannot put the file in place", self.relpath)
        except BaseException:
            self.abort()
            raise
        self._done = True

    async def _finish(self, mode: int | None, mtime: float | None) -> None:
        """Set mode and mtime, fsync and read back (sent at once: the server answers in order, so one
        round trip), check, then close and rename (at once again)."""
        handle, self.handle = self.handle, None
        assert handle is not None
        try:
            *_, (landed, size) = await asyncio.gather(
                self._set_attrs(handle, mode, mtime),
                self._fsync(handle),
                digest_on_target(self.root.session, handle, self._partial_full, self.size),
            )
        except BaseException:
            await handle.close()
            raise
        if (landed, size) != (self.digest.hexdigest(), self.size):
            await handle.close()
            raise TargetError(
                f"the bytes on the target differ from those sent (sha256 {landed}, {size} bytes on the "
                f"target; {self.digest.hexdigest()}, {self.size} bytes sent): nothing was put in place",
                root=self.root.url,
                path=self.relpath,
            )
        await asyncio.gather(handle.close(), self.sftp.posix_rename(self._partial_full, self._full))

    @staticmethod
    async def _set_attrs(handle: asyncssh.SFTPClientFile, mode: int | None, mtime: float | None) -> None:
        if mode is not None or mtime is not None:
            when = None if mtime is None else math.floor(mtime)  # SFTP v3 dates in whole seconds
            permissions = None if mode is None else stat.S_IMODE(mode)
            await handle.setstat(asyncssh.SFTPAttrs(permissions=permissions, atime=when, mtime=when))

    async def _fsync(self, handle: asyncssh.SFTPClientFile) -> None:
        if self.root.fsync:
            with contextlib.suppress(asyncssh.SFTPOpUnsupported):  # a server without fsync@openssh.com
                await handle.fsync()

    def abort(self) -> None:
        """Let the outstanding writes end, then close and remove the temporary file."""
        if self._done:
            return
        self._done = True
        for write in self.in_flight:
            with contextlib.suppress(Exception):
                write.result()
        self.in_flight.clear()
        handle, self.handle = self.handle, None
        with contextlib.suppress(OSError, asyncssh.Error):
            if handle is not None:
                run_on_loop(handle.close())
            run_on_loop(self.root._discard(self._partial_full))


class StreamedPartialFile(SshPartialFile):
    """A big file whose bytes OpenSSH's ssh sends (`cat > TEMP` over the host's master connection,
    ssh_stream), hashed as they go; then opened over SFTP for SshPartialFile's commit: mode, mtime,
    fsync, the target's digest checked against the one of the bytes sent, the rename."""

    def __init__(self, root: SshRoot, relpath: str, channel: OpenSshChannel) -> None:
        self.channel = channel
        super().__init__(root, relpath)

    def _open(self) -> None:
        self.sftp = self.root.session.channel()
        self.digest = hashlib.sha256()
        self.in_flight = deque()
        self.handle = None
        self.sending: subprocess.Popen[bytes] | None = self.channel.stream_to(self._partial_full)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Hash `data` and hand it to ssh (blocks while the pipe to it is full)."""
        assert self.sending is not None and self.sending.stdin is not None
        self.digest.update(data)
        pipe, length, written = self.sending.stdin.fileno(), len(data), 0
        with memoryview(data) as view:
            try:
                while written < length:
                    written += os.write(pipe, view[written:])
            except OSError as exc:  # ssh ended: the connection dropped, or the command failed
                raise self.root.error(f"write failed: {self._ended()}", self.partial) from exc
        self.size += length
        return length

    def _ended(self) -> str:
        """Close ssh's input and wait for it to end; what went wrong, or "" when all landed."""
        sending, self.sending = self.sending, None
        if sending is None:
            return ""
        _, errors = sending.communicate()
        if sending.returncode == 0:
            return ""
        told = [line for line in errors.decode(errors="replace").splitlines() if line.strip()]
        if sending.returncode == 255:  # ssh's own failure, not the command's
            self.channel.broken = True  # the next file starts a new master connection
            return "the connection dropped" + (f" ({told[-1]})" if told else "")
        return told[-1] if told else f"the target's cat ended with status {sending.returncode}"

    def commit(
        self, *, mode: int | None = None, mtime: float | None = None, sync_folder: bool = True
    ) -> None:
        """Wait for ssh to deliver every byte, open the file over SFTP, and commit as over SFTP."""
        try:
            if failure := self._ended():
                raise self.root.error(f"write failed: {failure}", self.partial)
            self.handle = self.root._call(self._reopen(), "cannot open the file sent", self.partial)
        except BaseException:
            self.abort()
            raise
        super().commit(mode=mode, mtime=mtime, sync_folder=sync_folder)

    async def _reopen(self) -> asyncssh.SFTPClientFile:
        return await self.sftp.open(self._partial_full, "rb")

    def abort(self) -> None:
        """Let ssh end (its input closed: the target's cat ends too), then remove the temporary file."""
        if not self._done:
            with contextlib.suppress(OSError):
                self._ended()
        super().abort()
