"""Stage normalised rows with one streaming COPY inside the run's transaction.

Rows go to a temporary staging table (which dies with the transaction, so a killed run leaves
nothing behind) or, on a first load into a target with no current rows, straight into the
target (nothing to compare with, so staging and merging would only copy the rows twice).

Batches are encoded as PostgreSQL's binary COPY format from Arrow (pgpq, Rust; geometries as
WKB, which PostGIS reads without parsing text) and sent by a background thread, so the
database parses and indexes batch n while Python reads and normalises batch n+1 — on two
cores, the backend is the second one. Targets with a column type the binary encoder does
not know fall back to CSV written by Arrow.
"""

from __future__ import annotations

import contextlib
import io
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from pgpq import ArrowToPostgresBinaryEncoder
from psycopg import sql

from sdi.errors import ConfigError, WarehouseRefused
from sdi.sql import load, one

STAGE_TABLE = "sdi_stage"
DELIVERED_TABLE = "sdi_delivered"
# Bookkeeping columns the merge fills; never staged from a source.
MANAGED_COLUMNS = {
    "version_id",
    "id",
    "run_id",
    "valid_from",
    "valid_to",
    "row_hash",
    "loaded_at",
    "source_hash",
}


@dataclass(frozen=True)
class TargetTable:
    """What the warehouse says about a target table."""

    schema: str
    name: str
    columns: dict[str, str]  # column → SQL type, in table order
    key_columns: tuple[str, ...]  # primary key (used by append mode)
    geometry_type: str | None  # e.g. 'MULTIPOLYGON'; None for tables without geometry

    @property
    def qualified(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def has_history(self) -> bool:
        return "valid_to" in self.columns

    @classmethod
    def introspect(cls, conn: psycopg.Connection, table: str) -> TargetTable:
        schema, name = table.split(".")
        rows = conn.execute(
            load("sdi.etl", "target_columns"),
            (table,),
        ).fetchall()
        if not rows:
            raise ConfigError(
                f"target table {table} does not exist in the warehouse; "
                "run `sdi table sync --apply` (a table the spec declares) or `sdi db upgrade`, "
                "or fix target.table in the job spec"
            )
        geometry = next((r[2].upper() for r in rows if r[2]), None)
        return cls(
            schema=schema,
            name=name,
            columns={r[0]: r[1] for r in rows},
            key_columns=tuple(r[0] for r in rows if r[3]),
            geometry_type=geometry,
        )


# SQL type (as format_type writes it) → the Arrow type the binary COPY encoder writes for it.
_BINARY_TYPES = {
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double precision": pa.float64(),
    "boolean": pa.bool_(),
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "uuid": pa.binary(16),
    "text[]": pa.list_(pa.string()),
}
_GEOMETRY_SRID = re.compile(r"geometry\(\w+,\s*(\d+)\)", re.IGNORECASE)


def binary_type(sql_type: str) -> pa.DataType | None:
    """The Arrow type a column is encoded as for binary COPY (None: not supported)."""
    if sql_type.startswith(("character varying", "character(")):
        return pa.string()
    if sql_type.startswith("geometry"):
        return pa.binary()  # WKB; PostGIS takes the SRID from the column's type
    return _BINARY_TYPES.get(sql_type)


def geometry_srid(sql_type: str) -> int | None:
    """The SRID a geometry column's type fixes (``geometry(MultiPolygon,4326)`` → 4326)."""
    match = _GEOMETRY_SRID.match(sql_type)
    return int(match.group(1)) if match else None


_HEX_DIGITS = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def hex_column(blobs: np.ndarray, index: pd.Index) -> pd.Series:
    """Binary values (WKB) as a column of hex text for a CSV COPY, without a Python string
    per row (shapely's own hex output is several times slower).

    >>> hex_column(np.array([b"\\x01\\xab", b"\\xff"], dtype=object), pd.RangeIndex(2)).tolist()
    ['01AB', 'FF']
    """
    lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    digits = np.empty(data.size * 2, dtype=np.uint8)
    digits[0::2] = _HEX_DIGITS[data >> 4]
    digits[1::2] = _HEX_DIGITS[data & 0x0F]
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum(lengths * 2, out=offsets[1:])
    array = pa.LargeStringArray.from_buffers(
        len(blobs), pa.py_buffer(offsets), pa.py_buffer(digits)
    )
    return pd.Series(pd.arrays.ArrowExtensionArray(array), index=index)


def _array_literal(items: Any) -> str | None:
    """A tuple of texts as a PostgreSQL array literal (for the CSV fallback)."""
    if items is None or items is pd.NA or (isinstance(items, float) and items != items):
        return None
    quoted = ('"' + str(i).replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items)
    return "{" + ",".join(quoted) + "}"


def _arrow_column(values: pd.Series, name: str, sql_type: str, type_: pa.DataType) -> pa.Array:
    try:
        if isinstance(values.dtype, pd.ArrowDtype) and values.dtype.pyarrow_dtype == type_:
            array = pa.array(values)  # already Arrow (WKB, row hashes): no copy
            return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
        if pa.types.is_list(type_) or pa.types.is_binary(type_) or type_ == pa.binary(16):
            # tuples of texts, WKB, row hashes: Python objects
            return pa.array(values.to_numpy(dtype=object), type=type_, from_pandas=True)
        array = pa.array(values, from_pandas=True)
        return array if array.type == type_ else pc.cast(array, type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise WarehouseRefused(
            f"column {name}: a value does not fit the warehouse's type {sql_type} ({exc}); "
            "nothing was written. Fix the delivery or the field's type in the job spec"
        ) from None


class _End:
    """Queue markers: no more batches (``aborted``: the run failed, cancel the COPY)."""

    def __init__(self, aborted: bool) -> None:
        self.aborted = aborted


class _Cancelled(Exception):
    pass


class Stage:
    """One streaming COPY of normalised batches, sent by a background thread.

    ``direct``: rows go straight into the target (a first load), with ``constants`` (run_id,
    valid_from) added to every row and the columns a sequence fills (version_id, id) numbered
    here; otherwise into a temporary table shaped like the staged columns. Use as a context
    manager: leaving it with an exception cancels the COPY.
    """

    QUEUED_BATCHES = 1  # batches normalised ahead of the COPY: bounds memory

    def __init__(
        self,
        conn: psycopg.Connection,
        target: TargetTable,
        columns: list[str],
        *,
        direct: bool = False,
        constants: dict[str, Any] | None = None,
    ) -> None:
        unknown = [c for c in [*columns, *(constants or {})] if c not in target.columns]
        if unknown:
            raise ConfigError(
                f"{target.schema}.{target.name} has no column(s) {', '.join(unknown)}; "
                "its columns are: "
                + ", ".join(c for c in target.columns if c not in MANAGED_COLUMNS)
            )
        self.conn = conn
        self.columns = columns
        self.direct = direct
        self.constants = constants or {}
        self.rows = 0
        self.geometry_srid = geometry_srid(target.columns.get("geom", ""))
        # column → [its sequence, the next number]: taken in blocks, not row by row
        self._numbered = self._sequences(target) if direct else {}
        copied = [*columns, *self._numbered, *self.constants]
        self._sql_types = {c: target.columns[c] for c in copied}
        if not direct:
            # any geometry type is staged (the merge casts to the target's); the SRID is fixed
            # by the column so that WKB without one (cheaper to write) takes it
            self._sql_types = {
                c: (
                    f"geometry(Geometry,{self.geometry_srid})"
                    if c == "geom" and self.geometry_srid
                    else "geometry"
                    if c == "geom"
                    else t
                )
                for c, t in self._sql_types.items()
            }
            # a type as the catalogue spells it (format_type), e.g. character varying(20):
            # SQL text from the database itself, not a name, so not an Identifier
            definitions = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
                for c, t in self._sql_types.items()
            )
            conn.execute(
                sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
                    sql.Identifier(STAGE_TABLE), definitions
                )
            )
        types = {c: binary_type(t) for c, t in self._sql_types.items()}
        self.binary = all(t is not None for t in types.values())
        if self.binary:
            self._schema = pa.schema([(c, t) for c, t in types.items()])
            self._encoder = ArrowToPostgresBinaryEncoder(self._schema)
        table = target.qualified if direct else sql.Identifier(STAGE_TABLE)
        self._statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(
            table,
            sql.SQL(", ").join(map(sql.Identifier, copied)),
            sql.SQL("binary" if self.binary else "csv"),
        )
        self._queue: queue.Queue = queue.Queue(self.QUEUED_BATCHES)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _sequences(self, target: TargetTable) -> dict[str, list]:
        """The target's columns filled by a sequence, each with its next number.

        A first load holds the target's lock, which keeps every other writer — the only
        users of these sequences — waiting, so it can number its rows itself and move each
        sequence past them at the end (``__exit__``), instead of two nextval() calls per row
        (``docs/etl-performance.md``)."""
        table = f"{target.schema}.{target.name}"
        sequences = self.conn.execute(load("sdi.etl", "sequences"), {"table": table}).fetchall()
        return {
            column: [sequence, one(self.conn.execute("SELECT nextval(%s)", (sequence,)))[0]]
            for column, sequence in sequences
            if column not in self.columns  # a delivered value wins, as over a default
        }

    def _number(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not self._numbered:
            return frame
        numbers = {}
        for column, counter in self._numbered.items():
            numbers[column] = np.arange(counter[1], counter[1] + len(frame), dtype=np.int64)
            counter[1] += len(frame)
        return frame.assign(**numbers)

    # -- encoding ------------------------------------------------------------------------
    def _record_batch(self, frame: pd.DataFrame) -> pa.RecordBatch:
        arrays = [
            _arrow_column(frame[c], c, self._sql_types[c], self._schema.field(c).type)
            for c in [*self.columns, *self._numbered]
        ]
        for name, value in self.constants.items():
            arrays.append(pa.repeat(pa.scalar(value, self._schema.field(name).type), len(frame)))
        return pa.RecordBatch.from_arrays(arrays, schema=self._schema)

    def _csv(self, frame: pd.DataFrame) -> bytes:
        """The fallback for column types the binary encoder does not know: CSV by Arrow."""
        out = frame[[*self.columns, *self._numbered]].copy()
        for column in self.columns:
            sql_type = self._sql_types[column]
            if sql_type.endswith("[]"):
                out[column] = out[column].map(_array_literal)
            elif sql_type == "uuid":
                out[column] = [None if v is None else v.hex() for v in out[column]]
            elif sql_type.startswith("geometry"):
                out[column] = hex_column(out[column].to_numpy(), out.index)
        for name, value in self.constants.items():
            out[name] = value
        buffer = io.BytesIO()
        table = pa.Table.from_pandas(out, preserve_index=False)
        pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
        return buffer.getvalue()

    def _encode(self, frame: pd.DataFrame) -> bytes:
        if self.binary:
            return self._encoder.write_batch(self._record_batch(frame))
        return self._csv(frame)

    # -- the COPY thread -----------------------------------------------------------------
    def _send(self) -> None:
        item = None
        try:
            with self.conn.cursor().copy(self._statement) as copy:
                if self.binary:
                    copy.write(self._encoder.write_header())
                while not isinstance(item := self._queue.get(), _End):
                    copy.write(self._encode(item))
                if item.aborted:
                    raise _Cancelled  # psycopg ends the COPY with an error: nothing is kept
                if self.binary:
                    copy.write(self._encoder.finish())
        except _Cancelled:
            pass
        except BaseException as exc:  # handed to the main thread, which raises it
            self._error = exc
            while not isinstance(item, _End):
                item = self._queue.get()  # unblock the main thread; it stops at its next write

    def __enter__(self) -> Stage:
        if self.binary:  # one encoder per COPY: each stream has its header and trailer
            self._encoder = ArrowToPostgresBinaryEncoder(self._schema)
        self._thread = threading.Thread(target=self._send, name="sdi-copy", daemon=True)
        self._thread.start()
        return self

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """End the COPY (what it sent is kept) so that the block can use the connection,
        then go on with another."""
        self._end_copy(aborted=False)
        if self._error is not None:
            raise self._error
        yield
        self.__enter__()

    def _end_copy(self, aborted: bool) -> None:
        assert self._thread is not None
        self._queue.put(_End(aborted=aborted))
        self._thread.join()

    def write(self, frame: pd.DataFrame) -> None:
        """Queue one batch (columns named as in ``self.columns``; geom as WKB bytes)."""
        if self._error is not None:
            raise self._error
        if frame.empty:
            return
        self._queue.put(self._number(frame))
        self.rows += len(frame)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end_copy(aborted=kind is not None)
        if kind is None and self._error is not None:
            raise self._error
        for sequence, following in self._numbered.values():
            if kind is None and following > 1:  # the next nextval() continues after our rows
                self.conn.execute("SELECT setval(%s, %s)", (sequence, following - 1))
        if kind is None and not self.direct:
            self._index()

    def _index(self) -> None:
        """Index and analyse the staged rows so the merge joins by hash or index, not by scan."""
        if "natural_key" in self.columns:
            self.conn.execute(
                sql.SQL("CREATE INDEX ON {} (natural_key)").format(sql.Identifier(STAGE_TABLE))
            )
        self.conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(STAGE_TABLE)))

    def write_delivered(self, keys: list[np.ndarray]) -> None:
        """Every natural key of the delivery (staged, unchanged or rejected): what is not
        among them is retired."""
        self.conn.execute(
            sql.SQL("CREATE TEMP TABLE {} (natural_key text) ON COMMIT DROP").format(
                sql.Identifier(DELIVERED_TABLE)
            )
        )
        encoder = ArrowToPostgresBinaryEncoder(pa.schema([("natural_key", pa.string())]))
        array = pa.array(np.concatenate(keys) if keys else [], type=pa.string())
        with self.conn.cursor().copy(
            sql.SQL("COPY {} FROM STDIN (FORMAT binary)").format(sql.Identifier(DELIVERED_TABLE))
        ) as copy:
            copy.write(encoder.write_header())
            copy.write(encoder.write_batch(pa.record_batch([array], names=["natural_key"])))
            copy.write(encoder.finish())
        self.conn.execute(
            sql.SQL("CREATE INDEX ON {} (natural_key)").format(sql.Identifier(DELIVERED_TABLE))
        )
        self.conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(DELIVERED_TABLE)))
