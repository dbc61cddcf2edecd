"""Stage normalised rows with COPY into a temporary table inside the run's transaction.

The staging table dies with the transaction, so a killed run leaves nothing behind.
Batches are turned into CSV by Arrow (C++), never row by row in Python.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from sdi.errors import ConfigError

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
    def qualified(self) -> sql.Composed:
        return sql.Identifier(self.schema, self.name)

    @property
    def has_history(self) -> bool:
        return "valid_to" in self.columns

    @classmethod
    def introspect(cls, conn: psycopg.Connection, table: str) -> TargetTable:
        schema, name = table.split(".")
        rows = conn.execute(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                   CASE WHEN t.typname = 'geometry' THEN postgis_typmod_type(a.atttypmod) END,
                   a.attnum = ANY (coalesce(i.indkey::int2[], '{}'))
            FROM pg_attribute a
            JOIN pg_type t ON t.oid = a.atttypid
            LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
            WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """,
            (table,),
        ).fetchall()
        if not rows:
            raise ConfigError(
                f"target table {table} does not exist in the warehouse; "
                "run `sdi db upgrade` or fix target.table in the job spec"
            )
        geometry = next((r[2].upper() for r in rows if r[2]), None)
        return cls(
            schema=schema,
            name=name,
            columns={r[0]: r[1] for r in rows},
            key_columns=tuple(r[0] for r in rows if r[3]),
            geometry_type=geometry,
        )


_HEX_DIGITS = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def hex_column(blobs: np.ndarray, index: pd.Index) -> pd.Series:
    """Binary values (WKB) as a column of hex text for COPY, without a Python string per row.

    The hex digits are computed on one byte array and handed to Arrow as a string array
    (shapely's own hex output is 4× slower).

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


class Stage:
    """A temporary table shaped like the staged columns of a target, filled by COPY."""

    def __init__(self, conn: psycopg.Connection, target: TargetTable, columns: list[str]) -> None:
        unknown = [c for c in columns if c not in target.columns]
        if unknown:
            raise ConfigError(
                f"{target.schema}.{target.name} has no column(s) {', '.join(unknown)}; "
                "its columns are: "
                + ", ".join(c for c in target.columns if c not in MANAGED_COLUMNS)
            )
        self.conn = conn
        self.columns = columns
        self.rows = 0
        definitions = sql.SQL(", ").join(
            sql.SQL("{} {}").format(
                sql.Identifier(c),
                # any geometry type is staged; the merge casts to the target's (e.g. ST_Multi)
                sql.SQL("geometry" if c == "geom" else target.columns[c]),
            )
            for c in columns
        )
        conn.execute(
            sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
                sql.Identifier(STAGE_TABLE), definitions
            )
        )

    def write(self, frame: pd.DataFrame) -> None:
        """COPY one batch (columns named as in ``self.columns``; geom as hex EWKB)."""
        if frame.empty:
            return
        buffer = io.BytesIO()
        table = pa.Table.from_pandas(frame[self.columns], preserve_index=False)
        pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            sql.Identifier(STAGE_TABLE), sql.SQL(", ").join(map(sql.Identifier, self.columns))
        )
        with self.conn.cursor().copy(statement) as copy:
            copy.write(buffer.getbuffer())
        self.rows += len(frame)

    def write_delivered(self, keys: list[np.ndarray]) -> None:
        """Every natural key of the delivery (staged, unchanged or rejected): what is not
        among them is retired."""
        self.conn.execute(
            sql.SQL("CREATE TEMP TABLE {} (natural_key text) ON COMMIT DROP").format(
                sql.Identifier(DELIVERED_TABLE)
            )
        )
        buffer = io.BytesIO()
        table = pa.table(
            {"natural_key": pa.array(np.concatenate(keys) if keys else [], type=pa.string())}
        )
        pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
        with self.conn.cursor().copy(
            sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(sql.Identifier(DELIVERED_TABLE))
        ) as copy:
            copy.write(buffer.getbuffer())
        self.conn.execute(
            sql.SQL("CREATE INDEX ON {} (natural_key)").format(sql.Identifier(DELIVERED_TABLE))
        )
        self.conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(DELIVERED_TABLE)))

    def finish(self) -> None:
        """Index and analyse the staged rows so the merge joins by hash or index, not by scan."""
        if "natural_key" in self.columns:
            self.conn.execute(
                sql.SQL("CREATE INDEX ON {} (natural_key)").format(sql.Identifier(STAGE_TABLE))
            )
        self.conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(STAGE_TABLE)))
