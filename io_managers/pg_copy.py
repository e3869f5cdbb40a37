"""Loading Arrow tables into the recovery database with binary COPY, replacing a set's rows atomically.

How it works: `replace_rows(conn, table, arrow)` runs, in ONE transaction: `DELETE FROM omni.<table>
WHERE backup_set_id = ANY(<the ids in the Arrow table>)`, then `COPY omni.<table> (cols) FROM STDIN
(FORMAT BINARY)`, then COMMIT. The columns copied are those both tables share (extra Arrow columns
stay in Parquet only; missing ones take their defaults). Rows are sent in primary-key order (an index
sort, then batches of 50,000 rows), so the server appends to its B-tree instead of inserting all over
it. Each batch is encoded to PostgreSQL's binary tuple format column-wise with Arrow compute
(`encode_binary`: big-endian integers, microseconds since 2000 for timestamptz, a version byte before
jsonb text), without a Python object per value; a psycopg `QueuedLibpqWriter` sends one batch from a
thread while the next is encoded. A column type the encoder does not know falls back to psycopg's
`write_row` with `set_types` for the whole load. The foreign key to omni.backup_sets is checked once
per set rather than per row when that is exactly equivalent (`_check_parents_once`): on a million
rows PostgreSQL's per-row checks cost about a third of the load.

What can go wrong: any error (a constraint, a type, a lost connection, an exception raised by the
caller's `on_batch` callback) rolls the whole transaction back: the previous load's rows stay exactly
as they were. Deleting by backup_set_id means a load replaces every row of each set it carries, so a
table must always be loaded with all of a set's rows. A table without a `backup_set_id` column
cannot be loaded here. The foreign keys to `omni.backup_sets` are deferred: the `backup_sets` row
must exist when the transaction commits.
"""

from __future__ import annotations

import array
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import postgres, sql
from psycopg.adapt import Dumper
from psycopg.copy import QueuedLibpqWriter
from psycopg.pq import Format
from psycopg.rows import TupleRow

from omni_recovery.db.audit import audit
from omni_recovery.errors import DatabaseError

__all__ = ["BATCH_ROWS", "copy_rows", "replace_rows", "table_columns"]

SCHEMA = "omni"
BATCH_ROWS = 50_000


class _JsonText(str):
    """Marker type: registering its dumper maps the jsonb oid to `_JsonbTextBinaryDumper`."""


class _JsonbTextBinaryDumper(Dumper):
    """Dump already-serialised JSON text as binary jsonb (version byte 1, then the UTF-8 text)."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + (obj if isinstance(obj, bytes) else str(obj).encode("utf-8"))


def table_columns(conn: psycopg.Connection[TupleRow], table: str) -> list[tuple[str, str]]:
    """(name, type) of every column of omni.<table>, in table order; types as format_type prints them."""
    rows = conn.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_attribute a
        WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        (f"{SCHEMA}.{table}",),
    ).fetchall()
    if not rows:
        raise DatabaseError(f"the recovery database has no table {SCHEMA}.{table}: run init-database")
    return [(str(name), str(kind)) for name, kind in rows]


def _pg_type(kind: str) -> str:
    return {"timestamp with time zone": "timestamptz", "character varying": "text"}.get(kind, kind)


_PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in microseconds since 1970
_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags 0, no header extension
_TRAILER = b"\xff\xff"
_NULL = pa.scalar(b"\xff\xff\xff\xff", pa.binary())
_EMPTY = pa.scalar(b"", pa.binary())
_WIDTHS = {"bigint": 8, "integer": 4, "smallint": 2, "timestamptz": 8, "double precision": 8}
_INT_TYPES = {8: pa.int64(), 4: pa.int32(), 2: pa.int16()}


def _big_endian(values: pa.Array, width: int, code: str) -> pa.Array:
    """Fixed-width values (no nulls) as a binary array of their big-endian bytes."""
    values = values.cast(pa.float64() if code == "d" else _INT_TYPES[width])
    raw = array.array(code)
    start = values.offset * width
    raw.frombytes(memoryview(values.buffers()[1])[start : start + len(values) * width])
    raw.byteswap()
    fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(raw)])
    return fixed.cast(pa.binary())


def _field(column: pa.Array, pg_type: str) -> pa.Array | None:
    """Each value of `column` as one field of a binary COPY tuple (length, then bytes); None if unknown."""
    if pg_type in ("text", "jsonb"):
        data = column.cast(pa.string()).cast(pa.binary())
        lengths = pc.fill_null(pc.binary_length(data), 0).cast(pa.int32())
        if pg_type == "jsonb":
            lengths = pc.add(lengths, pa.scalar(1, pa.int32()))
            data = pc.binary_join_element_wise(pa.scalar(b"\x01", pa.binary()), data, _EMPTY)
        value = pc.binary_join_element_wise(_big_endian(lengths, 4, "i"), data, _EMPTY)
    elif pg_type == "boolean":
        value = pc.if_else(
            column.cast(pa.bool_()),
            pa.scalar(b"\x00\x00\x00\x01\x01", pa.binary()),
            pa.scalar(b"\x00\x00\x00\x01\x00", pa.binary()),
        )
    elif pg_type in _WIDTHS:
        width = _WIDTHS[pg_type]
        if pg_type == "timestamptz":
            micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
            numbers = pc.fill_null(pc.subtract(micros, _PG_EPOCH_US), 0)
            code = "q"
        elif pg_type == "double precision":
            numbers, code = pc.fill_null(column.cast(pa.float64()), 0.0), "d"
        else:
            numbers, code = pc.fill_null(column.cast(_INT_TYPES[width]), 0), {8: "q", 4: "i", 2: "h"}[width]
        prefix = pa.scalar(width.to_bytes(4, "big"), pa.binary())
        value = pc.binary_join_element_wise(prefix, _big_endian(numbers, width, code), _EMPTY)
    else:
        return None
    if column.null_count:
        value = pc.if_else(pc.is_valid(column), value, _NULL)
    return value


def encode_binary(batch: pa.RecordBatch, types: Sequence[str]) -> bytes | None:
    """The tuples of `batch` in PostgreSQL's binary COPY format (no header); None if a type is unknown."""
    fields = []
    for column, kind in zip(batch.columns, types, strict=True):
        field = _field(column, kind)
        if field is None:
            return None
        fields.append(field)
    count = pa.scalar(len(fields).to_bytes(2, "big"), pa.binary())
    rows = pc.binary_join_element_wise(count, *fields, _EMPTY)
    offsets = rows.buffers()[1]
    first, last = (
        struct.unpack_from("<i", offsets, rows.offset * 4)[0],
        struct.unpack_from("<i", offsets, (rows.offset + len(rows)) * 4)[0],
    )
    return memoryview(rows.buffers()[2])[first:last].tobytes()


def primary_key(cursor: psycopg.Cursor[TupleRow], table: str) -> list[str]:
    """The primary key columns of omni.<table>, in key order (empty without a primary key)."""
    rows = cursor.execute(
        """
        SELECT a.attname
        FROM pg_index i
        JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = to_regclass(%s) AND i.indisprimary
        ORDER BY k.n
        """,
        (f"{SCHEMA}.{table}",),
    ).fetchall()
    return [str(row[0]) for row in rows]


def _key_order(cursor: psycopg.Cursor[TupleRow], table: str, data: pa.Table) -> pa.Array | None:
    """Row order that sends rows in primary-key order (None when unsorted is as good)."""
    key = primary_key(cursor, table)
    if not key or data.num_rows < 2 or any(name not in data.column_names for name in key):
        return None
    return pc.sort_indices(data, sort_keys=[(name, "ascending") for name in key])


def _batches(data: pa.Table, order: pa.Array | None) -> Iterator[pa.RecordBatch]:
    """Record batches of at most BATCH_ROWS rows, in `order` when given (one batch copied at a time)."""
    if order is None:
        yield from data.to_batches(max_chunksize=BATCH_ROWS)
        return
    for start in range(0, len(order), BATCH_ROWS):
        taken = data.take(order.slice(start, BATCH_ROWS))
        yield from taken.combine_chunks().to_batches(max_chunksize=BATCH_ROWS)


def copy_rows(
    cursor: psycopg.Cursor[TupleRow],
    table: str,
    data: pa.Table,
    columns: Sequence[tuple[str, str]],
    *,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """COPY the `columns` (name, PostgreSQL type) of `data` into omni.<table>; returns rows copied.

    Batches are encoded to the binary COPY format column-wise with Arrow compute (`encode_binary`);
    a column of a type that encoder does not know falls back to psycopg's `write_row`."""
    names = [name for name, _ in columns]
    types = [_pg_type(kind) for _, kind in columns]
    cursor.adapters.register_dumper(_JsonText, _JsonbTextBinaryDumper)
    statement = sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(SCHEMA), sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    selected = data.select(names)
    order = _key_order(cursor, table, selected)
    fast = all(
        _field(pa.nulls(0, f.type), kind) is not None for f, kind in zip(selected.schema, types, strict=True)
    )
    copied = 0
    # A queued writer sends to the server from a thread while the next batch is encoded here.
    with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        if fast:
            copy.write(_HEADER)
        else:
            copy.set_types(types)
        for batch in _batches(selected, order):
            encoded = encode_binary(batch, types) if fast else None
            if encoded is not None:
                copy.write(encoded)
            else:
                values = [column.to_pylist() for column in batch.columns]
                for row in zip(*values, strict=True):
                    copy.write_row(row)
            copied += batch.num_rows
            if on_batch is not None:
                on_batch(batch.num_rows)
        if fast:
            copy.write(_TRAILER)
    return copied


def replace_rows(
    conn: psycopg.Connection[TupleRow],
    table: str,
    data: pa.Table,
    *,
    on_batch: Callable[[int], None] | None = None,
    fast_parent_check: bool = True,
) -> dict[str, Any]:
    """Replace every row of the backup sets in `data` in omni.<table> with `data`, in one transaction.

    Returns {"rows": copied, "deleted": rows removed, "backup_set_ids": [...], "columns": [...],
    "parent_check": "once" or "per row"} (see `_check_parents_once`)."""
    if "backup_set_id" not in data.column_names:
        raise DatabaseError(f"cannot load {table}: the Arrow table has no backup_set_id column")
    set_ids = sorted(v for v in pc.unique(data.column("backup_set_id")).to_pylist() if v is not None)
    try:
        with conn.transaction():
            present = table_columns(conn, table)
            columns = [(name, kind) for name, kind in present if name in data.column_names]
            deleted = conn.execute(
                sql.SQL("DELETE FROM {}.{} WHERE backup_set_id = ANY(%s)").format(
                    sql.Identifier(SCHEMA), sql.Identifier(table)
                ),
                (set_ids,),
            ).rowcount
            parent_check = "per row"
            if fast_parent_check and _check_parents_once(conn, table, set_ids):
                parent_check = "once"
            with conn.cursor() as cursor:
                copied = copy_rows(cursor, table, data, columns, on_batch=on_batch)
            audit(
                conn,
                "catalog.load",
                f"{SCHEMA}.{table}",
                {"rows": copied, "deleted": deleted, "backup_set_ids": set_ids},
            )
    except psycopg.Error as exc:
        raise DatabaseError(f"loading {SCHEMA}.{table} failed and was rolled back: {exc}".strip()) from exc
    return {
        "rows": copied,
        "deleted": deleted,
        "backup_set_ids": set_ids,
        "columns": [name for name, _ in columns],
        "parent_check": parent_check,
    }


def _check_parents_once(conn: psycopg.Connection[TupleRow], table: str, set_ids: list[str]) -> bool:
    """Check the foreign key to omni.backup_sets once per set instead of once per row, if that is exact.

    Only when: the table's only foreign key is `backup_set_id` → omni.backup_sets, it has no trigger
    of its own (so the switch below skips nothing but those per-row checks), every set's parent row
    exists now (it is then locked FOR KEY SHARE until commit, exactly what each per-row check would
    take), and this role may set session_replication_role. Then `SET LOCAL session_replication_role
    = replica` turns off the per-row checks for this transaction only. Otherwise nothing changes and
    PostgreSQL checks every row at commit as usual."""
    if not set_ids:
        return False
    regclass = f"{SCHEMA}.{table}"
    foreign = conn.execute(
        """
        SELECT c.confrelid = to_regclass('omni.backup_sets')
               AND array_length(c.conkey, 1) = 1
               AND (SELECT attname FROM pg_attribute WHERE attrelid = c.conrelid AND attnum = c.conkey[1])
                   = 'backup_set_id'
        FROM pg_constraint c WHERE c.conrelid = to_regclass(%s) AND c.contype = 'f'
        """,
        (regclass,),
    ).fetchall()
    if len(foreign) != 1 or not foreign[0][0]:
        return False
    own_triggers = conn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal", (regclass,)
    ).fetchone()
    if own_triggers is None or own_triggers[0]:
        return False
    found = conn.execute(
        "SELECT backup_set_id FROM omni.backup_sets WHERE backup_set_id = ANY(%s) FOR KEY SHARE", (set_ids,)
    ).fetchall()
    if {row[0] for row in found} != set(set_ids):
        return False  # a parent written later in the transaction: leave it to the deferred checks
    try:
        with conn.transaction():  # a savepoint: a refused SET leaves the outer transaction usable
            conn.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True
