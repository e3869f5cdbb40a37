"""Connections to the recovery database, with errors that say where and what failed.

How it works: `connect(url)` opens a psycopg 3 connection (autocommit off unless asked, so every
caller decides where its transaction ends) with a connect timeout and an application name, and
turns every failure into a `DatabaseError` whose message names the host (or socket folder), port,
database and user, says what failed, and never contains the password. `describe_url()` and
`redact_url()` give the same safe view of a URL for logs and messages.

URLs are libpq connection strings: `postgresql://user:pw@host:5432/db`,
`postgresql://postgres@/db?host=/path/to/socket/dir`, or `host=... dbname=...` key/value form.

What can go wrong: a malformed URL (reported as such, without echoing it), a host that does not
answer (after `connect_timeout` seconds, 10 by default, unless the URL sets its own), a refused
or failed authentication, a missing database. A connection is not thread-safe for concurrent
queries: give each thread its own. Tables live in the `omni` schema: qualify names (`omni.files`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from omni_recovery.errors import DatabaseError

APPLICATION_NAME = "omni-recovery"
SCHEMA = "omni"  # every table of the recovery database lives in this schema
DEFAULT_CONNECT_TIMEOUT = 10

_URI_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@:?#]*:([^@/?#]*)@")
_KV_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def _parse(url: str) -> dict[str, Any] | None:
    try:
        return conninfo_to_dict(url)
    except psycopg.Error:
        return None


def _secrets(url: str) -> list[str]:
    """Every spelling of the URL's password that could show up in a message, longest first."""
    found: set[str] = set()
    params = _parse(url)
    if params and params.get("password"):
        found.add(str(params["password"]))
    for pattern in (_URI_PASSWORD, _KV_PASSWORD):
        for match in pattern.finditer(url):
            raw = match.group(1)
            if raw:
                found.add(raw)
                found.add(raw.strip("'"))
    for secret in list(found):
        found.add(quote(secret, safe=""))
    return sorted((s for s in found if s), key=len, reverse=True)


def scrub(message: str, url: str) -> str:
    """`message` with any form of the URL's password replaced by ***."""
    for secret in _secrets(url):
        message = message.replace(secret, "***")
    return message


def describe_url(url: str) -> str:
    """A password-free description such as `host db.example port 5432, database omni_recovery, user x`."""
    params = _parse(url)
    if params is None:
        return "a malformed database URL"
    host = str(params.get("host") or params.get("hostaddr") or "")
    if not host:
        where = "the default local socket"
    elif host.startswith("/") or host.startswith("@"):
        where = f"socket folder {host}"
    else:
        where = f"host {host}"
    port = params.get("port") or "5432"
    parts = [f"{where} port {port}"]
    if params.get("dbname"):
        parts.append(f"database {params['dbname']}")
    if params.get("user"):
        parts.append(f"user {params['user']}")
    return ", ".join(parts)


def redact_url(url: str) -> str:
    """The URL with its password replaced by *** (for logs); a malformed URL becomes a placeholder."""
    params = _parse(url)
    if params is None:
        return "<malformed database URL>"
    if "password" not in params:
        return url
    return scrub(url, url)


def with_database(url: str, database: str) -> str:
    """The same server, user and options as `url`, but database `database` (URL stays a URL)."""
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + quote(database, safe="")))
    try:
        return make_conninfo(url, dbname=database)
    except psycopg.Error as exc:
        raise DatabaseError(f"the database URL is malformed: {scrub(str(exc).strip(), url)}") from None


def connection_string(url: str, connect_timeout: int = DEFAULT_CONNECT_TIMEOUT) -> str:
    """`url` as libpq connection string with this project's timeout and application name, unless set."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise DatabaseError(f"the database URL is malformed: {scrub(str(exc).strip(), url)}") from None
    extra: dict[str, Any] = {}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = connect_timeout
    if "application_name" not in params:
        extra["application_name"] = APPLICATION_NAME
    return make_conninfo(url, **extra)


def connect(
    url: str,
    *,
    autocommit: bool = False,
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
) -> psycopg.Connection[TupleRow]:
    """Open a connection to the database at `url`; raise `DatabaseError` saying where and what failed."""
    conninfo = connection_string(url, connect_timeout)
    try:
        return psycopg.connect(conninfo, autocommit=autocommit)
    except psycopg.Error as exc:
        reason = " ".join(scrub(str(exc), url).split())
        raise DatabaseError(
            f"cannot connect to the recovery database at {describe_url(url)}: {reason}"
        ) from None
