"""Ports for the servers the tests start (sshd, PostgreSQL with TLS, `dagster dev`).

A port found free by binding port 0 comes from the kernel's ephemeral range, the range it also hands
to every outgoing connection (psycopg's, the tests' own, other processes'): between the probe and the
server's own bind, one of those can take it, and the server then fails to start or the test talks to
another one. `unused_port` picks a free port below that range instead, at random so that test
processes running at once rarely try the same one; `listens` tells whether a process we started (or
one of its children) is the one listening there.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

import psutil

LOWEST = 10000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def unused_port() -> int:
    """A loopback port nothing listens on now, outside the ephemeral range."""
    low = int(EPHEMERAL_RANGE.read_text().split()[0]) if EPHEMERAL_RANGE.exists() else 32768
    for _ in range(200):
        port = random.randrange(LOWEST, max(low, LOWEST + 1000))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port between {LOWEST} and {low}")


def listens(pid: int, port: int) -> bool:
    """Whether the process `pid` or one of its descendants listens on `port`."""
    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for member in family:
        try:
            connections = member.net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections):
            return True
    return False
