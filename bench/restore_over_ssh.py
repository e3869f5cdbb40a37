"""Restore over SSH: `restore_files` onto an OpenSSH target on loopback beside `scp` and `sftp`.

Run: python bench/restore_over_ssh.py [--size-gib 1] [--scale tiny] [--rounds 3] [--workdir DIR]
                                      [--outdir DIR]

Makes a backup set of at least SIZE (bench_set.py), restores it once to a local folder (the same
bytes, for the OpenSSH clients to send), starts OpenSSH's sshd on a high port of 127.0.0.1 with its
own host key (tests/targets/sftp_servers.py), then alternates for each round:
  scp       `scp -r` of the restored tree (its symlinks left out) to the target (verifies nothing)
  sftp      `sftp -b` with `put -r` of the same tree (likewise)
  restore   `restore_files` onto `ssh://…` of the target: every byte read from the ISOs and
            verified, big files sent by OpenSSH's ssh (targets/ssh_stream.py), small ones over
            pipelined SFTP writes, then verified on the target (its sha256sum for big files, read
            back for small ones) before its rename
  sftp-only the same restore with every byte over asyncssh's SFTP (`data_channel="sftp"`)
printing the median (and min) wall time, MB/s and the ratio to scp (goal: no slower than scp), and
the machine's load (`uptime`).
sshd needs openssh-server (apt-get install openssh-server); run as root or as the account whose
files the target folder holds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench_set import GiB, add_set_arguments, make_bench_set
from timing import TMPFS, timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test servers live in tests/


RESTORE = "restore_files over SSH (verified on the target)"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def openssh_client(program: str, server: object, key: Path, known_hosts: Path) -> list[str]:
    port_flag = "-P" if program in ("scp", "sftp") else "-p"
    return [
        program,
        "-q",
        "-i",
        str(key),
        port_flag,
        str(server.port),  # type: ignore[attr-defined]
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_set_arguments(parser, size_gib=1.0, scale="tiny")
    parser.add_argument("--outdir", type=Path, default=TMPFS, help="the target's folder goes here")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from omni_recovery.restorer.files import restore_files
    from omni_recovery.targets.driver import TargetRoot
    from omni_recovery.targets.ssh import SshRoot, close_sessions
    from tests.targets.sftp_servers import SSHD, OpenSshServer, new_key

    if SSHD is None:
        sys.exit("sshd is missing: apt-get install -y openssh-server")
    work = Path(tempfile.mkdtemp(prefix="bench-ssh-", dir=args.workdir))
    out = Path(tempfile.mkdtemp(prefix="bench-ssh-out-", dir=args.outdir))
    server = None
    try:
        made = make_bench_set(work, args.size_gib, args.scale, args.chunk_mib)
        source = work / "source"
        restore_files(made.items, TargetRoot(str(source)), made.data_key)
        for link in [p for p in source.rglob("*") if p.is_symlink()]:
            link.unlink()  # scp cannot send a symlink to a folder; the bytes are what is compared
        key = work / "id_ed25519"
        new_key(key)
        (work / "sshd").mkdir()
        server = OpenSshServer(work / "sshd", key).start()
        known_hosts = work / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{server.port} {server.host_key_line}\n")
        target = out / "target"
        host = server.url("").removeprefix("ssh://").rsplit(":", 1)[0]  # user@127.0.0.1

        def run_scp() -> None:
            command = openssh_client("scp", server, key, known_hosts)
            subprocess.run([*command, "-r", str(source), f"{host}:{target}"], check=True)

        def run_sftp() -> None:
            command = openssh_client("sftp", server, key, known_hosts)
            batch = f"put -r {source} {target}\n"
            subprocess.run([*command, "-b", "-", host], input=batch.encode(), check=True)

        def run_restore(data_channel: str) -> None:
            assert server is not None
            access = server.access(data_channel=data_channel)
            restore_files(made.items, SshRoot(server.url(str(target)), access), made.data_key)

        contenders: dict[str, Callable[[], None]] = {
            "scp -r": run_scp,
            "sftp put -r": run_sftp,
            RESTORE: lambda: run_restore("auto"),
            "restore_files, every byte over asyncssh's SFTP": lambda: run_restore("sftp"),
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, action in contenders.items():
                wall, _cpu = timed(action)
                times[name].append(wall)
                shutil.rmtree(target)
        close_sessions()
        baseline = statistics.median(times["scp -r"])
        size = made.restored_bytes / GiB
        print(f"\n{size:.2f} GiB onto OpenSSH on 127.0.0.1, {args.rounds} rounds alternating; {uptime()}")
        for name, samples in times.items():
            median = statistics.median(samples)
            print(
                f"  {name:50s} {median:7.2f} s ({min(samples):6.2f})  "
                f"{made.restored_bytes / median / 1e6:7.1f} MB/s  ratio to scp {median / baseline:5.2f}"
            )
        ratio = statistics.median(times[RESTORE]) / baseline
        verdict = "MET" if ratio <= 1 else "NOT MET"
        print(f"\ngoal: no slower than scp while verifying every byte: {ratio:.2f} {verdict}")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
