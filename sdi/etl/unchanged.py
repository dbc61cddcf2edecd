"""Rows delivered again unchanged: the source hash of every current feature, looked up by
natural key, so that a row whose hash is unchanged skips normalisation, staging and merging
(docs/etl-performance.md).

A target partitioned by province reads the hashes of the provinces each batch brings, as the
batches arrive: one province's delivery reads its own partition, not the nation's
(docs/national-warehouse.md). When a row's province cannot be told before normalisation (the
commune column is mapped through codes or a value map) every hash is read once. A hash not
read costs its row the slow path only: the merge still finds the row unchanged by its values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from sdi.etl.provinces import PROVINCE_COLUMN, Provinces
from sdi.etl.spec import JobSpec
from sdi.etl.stage import TargetTable
from sdi.sql import one


class CurrentHashes:
    """The current features' natural keys, source hashes and (partitioned) provinces."""

    def __init__(
        self,
        conn: psycopg.Connection,
        target: TargetTable,
        job: JobSpec,
        provinces: Provinces | None,
    ) -> None:
        self.conn = conn
        self.target = target
        self.provinces = provinces
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._keys: pd.Index | None = None
        self._hashes = np.empty(0, dtype=np.int64)
        self._of_rows: np.ndarray | None = None
        # the delivered column a row's province is told from, before normalisation
        self.commune_source = _plain_source(job, "commune_code") if provinces else None
        self.read_provinces: set[str] | None = set()  # None: every province is read
        if self.commune_source is None:
            self.read(None)

    def wanted(self, frame: pd.DataFrame) -> list[str]:
        """The provinces of ``frame`` (a batch as delivered) whose hashes are not read yet:
        :meth:`read` them before its rows are matched."""
        if self.read_provinces is None or self.provinces is None or self.commune_source is None:
            return []
        communes = frame.get(self.commune_source)
        codes = self.provinces.lookup(_as_text(communes), len(frame))
        return sorted({c for c in pd.unique(codes) if c} - self.read_provinces)

    def match(
        self, keys: pd.Series, hashes: np.ndarray, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Which ``candidates`` rows carry an unchanged source hash, and the provinces of
        those rows (partitioned targets)."""
        same = np.zeros(len(keys), dtype=bool)
        index = self._index()
        if index is None or not len(index):
            return same, None
        position = index.get_indexer(keys.to_numpy(dtype=object))
        same = (position >= 0) & candidates
        same[same] = self._hashes[position[same]] == hashes[same]
        provinces = self._of_rows[position[same]] if self._of_rows is not None else None
        return same, provinces

    def read(self, provinces: list[str] | None) -> None:
        """Read the hashes of ``provinces`` (None: of every province)."""
        aggregated = ["natural_key", "source_hash"]
        if self.provinces is not None:
            aggregated.append(PROVINCE_COLUMN)
        columns = sql.SQL(", ").join(
            sql.SQL("array_agg({})").format(sql.Identifier(c)) for c in aggregated
        )
        where: sql.Composable = sql.SQL("valid_to IS NULL AND source_hash IS NOT NULL")
        if provinces is not None:
            where = sql.SQL("{} AND {} = ANY(%s::text[])").format(
                where, sql.Identifier(PROVINCE_COLUMN)
            )
        # Two or three arrays in one binary row: less client CPU than a COPY, which psycopg
        # hands over one row at a time (docs/etl-performance.md).
        cursor = self.conn.execute(
            sql.SQL("SELECT {} FROM {} WHERE {}").format(columns, self.target.qualified, where),
            (provinces,) if provinces is not None else None,
            binary=True,
        )
        keys, hashes, *of_rows = one(cursor)
        if provinces is None:
            self.read_provinces = None
        else:
            self.read_provinces = (self.read_provinces or set()) | set(provinces)
        if keys:
            self._chunks.append(
                (
                    np.array(keys, dtype=object),
                    np.array(hashes, dtype=np.int64),
                    np.array(of_rows[0], dtype=object) if of_rows else None,
                )
            )
            self._keys = None  # rebuilt on the next match

    def _index(self) -> pd.Index | None:
        if self._keys is None and self._chunks:
            keys, hashes, of_rows = zip(*self._chunks, strict=True)
            self._keys = pd.Index(np.concatenate(keys))
            self._hashes = np.concatenate(hashes)
            self._of_rows = None if of_rows[0] is None else np.concatenate(of_rows)
            self._chunks = [(self._keys.to_numpy(), self._hashes, self._of_rows)]
        return self._keys


def _plain_source(job: JobSpec, name: str) -> str | None:
    """The delivered column target column ``name`` is copied from as it is, if any."""
    for spec in job.fields:
        if spec.name == name:
            plain = spec.source and not (spec.value_map or spec.codes or spec.split)
            return spec.source if plain else None
    return None


def _as_text(values: pd.Series | None) -> pd.Series | None:
    """Codes as text, as the commune column stores them (a number read from a file)."""
    if values is None or pd.api.types.is_string_dtype(values):
        return values
    return values.astype(str)
