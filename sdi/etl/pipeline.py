"""The heavy half of a run: read → normalise → validate → stage, batch by batch.

Imported only once a run has decided to load (a skipped run never pays for pandas, shapely,
pyogrio and rasterio).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from sdi.db.tables import REPAIRED_COLUMN
from sdi.errors import RejectThresholdExceeded
from sdi.etl.merge import create_indexes, drop_indexes_if_empty, has_current_rows
from sdi.etl.normalise import Issues, Reprojector, map_fields, natural_keys
from sdi.etl.plausibility import Plausibility
from sdi.etl.provinces import PROVINCE_COLUMN, Provinces, ensure_partitions, partition_key
from sdi.etl.readers import read_batches
from sdi.etl.readers.common import Batch
from sdi.etl.spec import JobSpec
from sdi.etl.stage import Stage, TargetTable
from sdi.etl.unchanged import CurrentHashes
from sdi.etl.validate import FirstSeen, check_bounds, check_geometry
from sdi.etl.wkb import Layout, as_multi
from sdi.settings import Settings
from sdi.sql import one

Progress = Callable[[int], None]


@dataclass
class Reject:
    path: str
    row_number: int
    natural_key: str | None
    reason: str
    raw: dict[str, Any]


# Row hashes of versions the pipeline writes: the row's source hash (64 bits of the delivered
# row and the spec) and this marker, as a uuid (the column's type, shared with the md5 hashes
# the database computes for combined contributions). Equal hashes mean nothing changed; the
# merge compares the values of rows whose hashes differ before it writes a new version, so a
# hash only has to be cheap and never equal for different contents.
_ROW_HASH_MARKER = np.frombuffer(b"sdi:src1", dtype=np.uint8)


def row_hashes(source_hashes: np.ndarray, index: pd.Index) -> pd.Series:
    """Source hashes (int64) as row hashes (16 bytes: the hash, then a marker).

    >>> bytes(row_hashes(np.array([1]), pd.RangeIndex(1)).iloc[0]).hex()
    '01000000000000007364693a73726331'
    """
    both = np.empty((len(source_hashes), 16), dtype=np.uint8)
    both[:, :8] = np.ascontiguousarray(source_hashes, dtype=np.int64).view(np.uint8).reshape(-1, 8)
    both[:, 8:] = _ROW_HASH_MARKER
    array = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(16), len(source_hashes), [None, pa.py_buffer(both)]
    )
    return pd.Series(pd.arrays.ArrowExtensionArray(array), index=index)


# shapely type id → WKB geometry type (Point 1, LineString 2, Polygon 3, Multi… 4–6)
_WKB_TYPES = np.array([1, 2, 2, 3, 4, 5, 6, 7], dtype=np.int64)


def _derive(job: JobSpec, province_geometry: np.ndarray) -> dict[str, np.ndarray]:
    """Derived columns: legal areas and lengths, in the province's CRS."""
    derived = {}
    for spec in job.fields:
        if spec.derive == "area":
            derived[spec.name] = np.round(shapely.area(province_geometry), 2)
        elif spec.derive == "length":
            derived[spec.name] = np.round(shapely.length(province_geometry), 2)
    return derived


# The first batch of a file is normalised in slices of this many rows: the database starts
# on the first slice while Python works on the rest, instead of idling through a whole batch.
FIRST_SLICE = 10_000


def _first_split(batches: Iterable[Batch]) -> Iterator[Batch]:
    """The batches, the first one cut into slices of growing size (10 k, 20 k, 40 k, …)."""
    for number, batch in enumerate(batches):
        start, size, rows = 0, FIRST_SLICE, len(batch.frame)
        while number == 0 and rows - start > 2 * size:
            yield batch.slice(start, start + size)
            start, size = start + size, size * 2
        yield batch.slice(start, rows) if start else batch


class JobRun:
    """One execution of one job against one database connection."""

    def __init__(self, job: JobSpec, conn: psycopg.Connection, settings: Settings) -> None:
        self.job = job
        self.conn = conn
        self.settings = settings
        self.rejects: list[Reject] = []
        # file → (encoding, evidence): what was detected or declared for its text
        self.encodings: dict[str, tuple[str, str | None]] = {}
        self.rows_read = 0
        self.repaired = 0
        self.files = ""  # the delivered files' names, for messages
        self.marks_repairs = False  # decided by load() from the target
        self.repairs: list[dict[str, Any]] = []  # repaired rows kept: file, row, key, why
        self.warnings: list[dict[str, Any]] = []  # values kept but reported (on_unknown: warn)
        self.duplicate_keys = FirstSeen("natural key")
        self.dropped_repeats = 0  # time series: the same reading twice in one delivery
        self.plausibility = (
            Plausibility.from_spec(job.plausibility, job.table) if job.plausibility else None
        )
        self.delivered: list[np.ndarray] = []  # every natural key in the delivery
        self.keeps_delivered = True  # not on a first load: nothing can be retired
        self.unchanged = 0  # rows skipped because their source hash is unchanged
        # source hashes are keyed by the spec: a changed mapping changes every hash
        self.hash_key = hashlib.sha256(job.spec_sha256.encode()).hexdigest()[:16]
        self.tracks_sources = False  # decided by track_sources() from the target
        self.current: CurrentHashes | None = None
        # A target partitioned by province: each row's province (sdi/etl/provinces.py)
        self.provinces: Provinces | None = None
        self.duplicate_geometries = FirstSeen("geometry") if job.unique_geometry else None
        self.hashes_rows = False  # decided by load() from the target
        self.srid_in_column = False  # the target's geometry column fixes the storage SRID
        # Raster footprints arrive in the storage CRS (each raster has its own CRS).
        self.reprojector = Reprojector(
            job.source.srid or settings.storage_srid, settings.storage_srid, settings.province_srid
        )

    # -- unchanged rows ------------------------------------------------------------------
    def track_sources(self, target: TargetTable) -> None:
        """Remember the source hash of every current feature (of a partitioned target: of the
        provinces delivered, sdi/etl/unchanged.py), so that rows delivered again unchanged
        skip normalisation, staging and merging altogether."""
        job = self.job
        if not (
            job.natural_key
            and "source_hash" in target.columns
            and job.mode == "history"
            and not job.contributes_as
        ):
            return
        self.tracks_sources = True
        self.current = CurrentHashes(self.conn, target, job, self.provinces)

    def _source_hashes(self, batch: Batch) -> np.ndarray:
        """A 64-bit hash of each delivered row as read (attributes + geometry) and the spec."""
        raw = batch.frame
        if batch.wkb is not None:  # the geometry as delivered: no need to write it again
            raw = raw.assign(__geometry__=pd.arrays.ArrowExtensionArray(batch.wkb))
        elif batch.geometry is not None:
            raw = raw.assign(__geometry__=shapely.to_wkb(batch.geometry))
        hashes = pd.util.hash_pandas_object(raw, index=False, hash_key=self.hash_key)
        return hashes.to_numpy().view(np.int64)

    # -- one batch -----------------------------------------------------------------------
    def normalise(self, batch: Batch, target: TargetTable) -> pd.DataFrame:
        issues = Issues(len(batch.frame))
        rows = np.arange(batch.first_row, batch.first_row + len(batch.frame))
        keys = None
        if self.job.natural_key:
            keys = natural_keys(
                batch.frame, self.job.natural_key, batch.first_row, where=batch.path
            )
            issues.flag(keys.isna(), f"natural key {self.job.natural_key} is incomplete")
            if self.job.mode != "append":  # time series: checked once normalised, below
                self.duplicate_keys.check(keys, rows, batch.path.name, issues)
            if self.keeps_delivered:
                self.delivered.append(keys[keys.notna()].to_numpy())
        hashes = None
        if self.tracks_sources or self.hashes_rows:
            hashes = self._source_hashes(batch)
            if keys is not None and self.current is not None:
                same, provinces = self.current.match(keys, hashes, issues.ok)
                if same.any():
                    self.unchanged += int(same.sum())
                    if self.provinces and provinces is not None:
                        # the provinces of rows delivered unchanged count as delivered
                        self.provinces.seen.update(provinces)
                    keep = ~same
                    batch = batch.subset(keep)  # unchanged rows' geometries never decoded
                    rows, keys, hashes = rows[keep], keys[keep], hashes[keep]
                    issues = issues.subset(keep)
        frame = map_fields(batch, self.job, issues)
        for position, message in issues.warnings:
            key = None if keys is None or pd.isna(keys.iloc[position]) else keys.iloc[position]
            self.warnings.append(
                {
                    "path": str(batch.path),
                    "row": int(rows[position]),
                    "key": key,
                    "warning": message,
                }
            )
        repeats = (
            self._repeated_readings(frame, target, rows, batch.path.name, issues)
            if self.job.mode == "append"
            else np.zeros(len(frame), dtype=bool)
        )
        if self.plausibility:  # observation feeds: sdi/etl/plausibility.py
            self.plausibility.check(frame, issues, ~repeats)
        if keys is not None and "natural_key" in target.columns:
            frame.insert(0, "natural_key", keys)
        if self.tracks_sources:
            frame["source_hash"] = hashes
        stored = None
        repaired, why = np.empty(0, dtype=np.int64), list[str]()
        if target.geometry_type:
            stored, geometry_issues, derived, repaired, why = self._geometries(batch, target)
            issues.flag(~geometry_issues.ok, geometry_issues.reasons)
            for name, values in derived.items():
                frame[name] = values
        if self.duplicate_geometries and stored is not None:
            wkb = pd.Series(stored.to_numpy(zero_copy_only=False), dtype=object)
            self.duplicate_geometries.check(wkb, rows, batch.path.name, issues)
        if self.provinces:
            frame[PROVINCE_COLUMN] = self.provinces.of(frame.get("commune_code"), len(frame))
        self._keep_rejects(batch, frame, rows, issues)
        ok = issues.ok & ~repeats
        # a repaired row that is rejected for another reason is a reject, not a repair
        kept = ok[repaired] if repaired.size else np.zeros(0, dtype=bool)
        self.repaired += int(kept.sum())
        if self.marks_repairs:  # the published layer says which geometries were repaired
            marked = np.zeros(len(frame), dtype=bool)
            marked[repaired[kept]] = True  # accepted rows only (a reject is not loaded)
            frame[REPAIRED_COLUMN] = marked
        for position, reason in zip(repaired[kept], np.asarray(why)[kept], strict=True):
            key = None if keys is None or pd.isna(keys.iloc[position]) else keys.iloc[position]
            self.repairs.append(
                {"path": str(batch.path), "row": int(rows[position]), "key": key, "why": reason}
            )
        accepted = frame[ok]
        if stored is not None:
            geom = pd.arrays.ArrowExtensionArray(stored.filter(pa.array(ok)))
            accepted = accepted.assign(geom=pd.Series(geom, index=accepted.index))
        if self.hashes_rows and hashes is not None:  # hashes_rows: computed above
            accepted = accepted.assign(row_hash=row_hashes(hashes[ok], accepted.index))
        return accepted

    def _geometries(
        self, batch: Batch, target: TargetTable
    ) -> tuple[pa.BinaryArray, Issues, dict[str, np.ndarray], np.ndarray, list[str]]:
        """The geometry half of a batch: the stored WKB, the rows' geometry issues (missing,
        wrong type, irreparable, out of bounds), the derived columns (legal area, length),
        the positions of the repaired geometries and why each was invalid."""
        assert target.geometry_type, "only a table with a geometry column has geometries"
        issues = Issues(len(batch.frame))
        geometry = batch.geometry
        if geometry is None:
            geometry = np.full(len(batch.frame), None, dtype=object)
        original = geometry
        geometry, repaired = check_geometry(geometry, target.geometry_type, issues)
        why = list(shapely.is_valid_reason(original[repaired])) if repaired.size else []
        stored, box = self._stored(batch, geometry, repaired, issues, target)
        check_bounds(box, self.job.bounds, issues)
        return (
            stored,
            issues,
            _derive(self.job, self.reprojector.to_province(geometry)),
            repaired,
            why,
        )

    def _stored(
        self,
        batch: Batch,
        geometry: np.ndarray,
        repaired: np.ndarray,
        issues: Issues,
        target: TargetTable,
    ) -> tuple[pa.BinaryArray, np.ndarray]:
        """Each row's geometry as the target stores it — WKB in the storage CRS (the column's
        type gives the SRID), single geometries made multi for a MULTI… column; null for
        rejected rows — and its bounds there (west, south, east, north; NaN for none).

        Delivered WKB is rewritten where it lies (``sdi/etl/wkb.py``); geometries it cannot
        take (repaired, 3D, curves, unclosed rings, …) are reprojected and written by shapely.
        """
        size = len(geometry)
        stored = pa.nulls(size, pa.binary())
        bounds = np.full((size, 4), np.nan)
        types = np.zeros(size, dtype=np.int64)  # WKB type of each stored geometry
        rewritten = np.zeros(size, dtype=bool)
        if batch.wkb is not None and self.srid_in_column:
            candidates = issues.ok.copy()
            candidates[repaired] = False
            layout = Layout.parse(batch.wkb, candidates)
            data, bounds[layout.usable] = layout.reproject(self.reprojector.storage_xy)
            stored, rewritten, types = layout.arrow(data), layout.usable, layout.types
        rest = np.flatnonzero(issues.ok & ~rewritten)
        if rest.size:
            projected = self.reprojector.to_storage(geometry[rest])
            bounds[rest] = shapely.bounds(projected)
            types[rest] = _WKB_TYPES[shapely.get_type_id(projected)]
            if self.srid_in_column:
                wkb = shapely.to_wkb(projected, byte_order=1, output_dimension=2)
            else:
                srid = self.settings.storage_srid
                projected = shapely.set_srid(projected, srid)
                wkb = shapely.to_wkb(projected, byte_order=1, include_srid=True)
            mask = np.zeros(size, dtype=bool)
            mask[rest] = True
            stored = pc.replace_with_mask(stored, pa.array(mask), pa.array(wkb, pa.binary()))
        if target.geometry_type and target.geometry_type.startswith("MULTI"):
            stored = as_multi(stored, types)
        return stored, bounds

    def _repeated_readings(
        self,
        frame: pd.DataFrame,
        target: TargetTable,
        rows: np.ndarray,
        path: str,
        issues: Issues,
    ) -> np.ndarray:
        """A time series is keyed by its normalised primary key (gauge + instant, however the
        instant was written): the same reading twice is dropped, two values are rejected."""
        columns = list(target.key_columns)
        key = frame[columns[0]].astype(str)
        for column in columns[1:]:
            key = key + " @ " + frame[column].astype(str)
        values = [c for c in frame.columns if c not in columns and c != "natural_key"]
        contents = pd.util.hash_pandas_object(frame[values], index=False).to_numpy()
        repeats = self.duplicate_keys.check(key, rows, path, issues, contents)
        self.dropped_repeats += int(repeats.sum())
        return repeats

    def _keep_rejects(
        self, batch: Batch, frame: pd.DataFrame, rows: np.ndarray, issues: Issues
    ) -> None:
        bad = np.flatnonzero(~issues.ok)
        if not bad.size:
            return
        raw = batch.frame.iloc[bad].astype(object).where(batch.frame.iloc[bad].notna(), None)
        if batch.geometry is not None:
            raw["geometry_wkt"] = [
                None if g is None else shapely.to_wkt(g, rounding_precision=3)[:2000]
                for g in batch.geometry[bad]
            ]
        keys = frame["natural_key"].iloc[bad] if "natural_key" in frame else [None] * bad.size
        for record, row, key, reason in zip(
            raw.to_dict("records"), rows[bad], keys, issues.reasons[bad], strict=True
        ):
            key = None if key is None or pd.isna(key) else key
            self.rejects.append(Reject(str(batch.path), int(row), key, reason, record))

    # -- whole run -----------------------------------------------------------------------
    def load(
        self,
        files: list[Path],
        target: TargetTable,
        progress: Progress | None,
        run_id: int | None = None,
    ) -> Stage:
        """Read, normalise and COPY every file; returns the stage (``stage.direct``: the rows
        went straight into the target, a first load, and there is nothing to merge)."""
        job = self.job
        if (
            PROVINCE_COLUMN in target.columns
            and PROVINCE_COLUMN not in {f.name for f in job.fields}
            and partition_key(self.conn, target)
        ):
            self.provinces = Provinces(self.conn, self.settings.province_code)
            ensure_partitions(self.conn, target, self.provinces.codes)
        self.track_sources(target)
        has_key = bool(job.natural_key) and "natural_key" in target.columns
        columns = ["natural_key"] if has_key else []
        columns += [f.name for f in job.fields]
        if self.provinces:
            columns.append(PROVINCE_COLUMN)
        if self.tracks_sources:
            columns.append("source_hash")
        # Every feature table has geometry_repaired (migration 0012a, sdi.db.tables): each
        # accepted row says whether its geometry was repaired (a table made before has none).
        self.marks_repairs = (
            bool(target.geometry_type)
            and REPAIRED_COLUMN in target.columns
            and all(f.name != REPAIRED_COLUMN for f in job.fields)  # a spec mapping it wins
        )
        if self.marks_repairs:
            columns.append(REPAIRED_COLUMN)
        # Plain feature tables get the row hash computed here (contributions are combined,
        # and hashed, in SQL; time series have none).
        self.hashes_rows = (
            has_key
            and "row_hash" in target.columns
            and job.mode in ("history", "replace_slice")
            and not job.contributes_as
        )
        if self.hashes_rows:
            columns.append("row_hash")
        if target.geometry_type:
            columns.append("geom")
        # A first load (no current feature) has nothing to compare with or retire: the rows
        # are copied straight into the target. Its B-tree indexes are filled row by row —
        # the server's work while Python normalises the next batch, on the second core —
        # but a spatial index of an empty table is dropped and built once at the end: GiST
        # inserts row by row cost the server more than the sorted build, and rebuilding the
        # B-trees too would leave their builds waiting for the last batch
        # (docs/etl-performance.md, "Indexes of an empty table").
        direct = self.hashes_rows and run_id is not None and not has_current_rows(self.conn, target)
        constants = None
        self.keeps_delivered = not direct
        if direct:
            self.current = None  # no current feature to compare with
        if direct:
            now = one(self.conn.execute("SELECT now()"))[0]  # the transaction's start
            constants = {"run_id": run_id, "valid_from": now}
            indexes = drop_indexes_if_empty(self.conn, target, methods=("gist",))
        self.files = ", ".join(p.name for p in files)
        stage = Stage(self.conn, target, columns, direct=direct, constants=constants)
        self.srid_in_column = stage.geometry_srid == self.settings.storage_srid
        if self.plausibility:  # reads what is stored before the COPY holds the connection
            self.plausibility.prepare(self.conn)
        with stage:
            for path in files:
                batches = read_batches(path, job.source, kind=job.kind, settings=self.settings)
                for batch in _first_split(batches):
                    if batch.encoding is not None:
                        self.encodings[str(path)] = (batch.encoding, batch.encoding_evidence)
                    self.rows_read += len(batch.frame)
                    if self.current is not None and (wanted := self.current.wanted(batch.frame)):
                        with stage.paused():  # the connection is the COPY's until it ends
                            self.current.read(wanted)
                    stage.write(self.normalise(batch, target))
                    if progress:
                        progress(len(batch.frame))
        if direct:
            create_indexes(self.conn, indexes)
        if has_key and not direct:
            stage.write_delivered(self.delivered)
        return stage

    def check_threshold(self) -> None:
        files = ", ".join(sorted({Path(r.path).name for r in self.rejects})) or None
        if not self.rows_read:
            raise RejectThresholdExceeded(
                f"job {self.job.name}: the delivery ({self.files}) has no features: an empty "
                "file, a wrong layer or a filter that matches nothing; nothing was written"
            )
        ratio = len(self.rejects) / self.rows_read
        if ratio > self.job.max_reject_ratio:
            # group reasons by their wording, without the values they quote
            full = pd.Series([r.reason for r in self.rejects])
            wording = full.str.replace(r"'[^']*'|\([^)]*\)", "…", regex=True)
            reasons = wording.value_counts().head(3)
            first = {w: (i, full[i]) for i, w in reversed(list(enumerate(wording)))}
            summary = "; ".join(
                f"{n} × {reason} (first: row {self.rejects[first[reason][0]].row_number}, "
                f"{first[reason][1]})"
                for reason, n in reasons.items()
            )
            raise RejectThresholdExceeded(
                f"job {self.job.name}: {len(self.rejects)} of {self.rows_read} rows of "
                f"{files} rejected "
                f"({ratio:.1%} > the job's limit {self.job.max_reject_ratio:.1%}); nothing was "
                f"written. Most common: {summary}"
            )


def _json_value(value: Any) -> Any:
    """JSON has no NaN: missing values read by pandas become null."""
    if isinstance(value, float) and value != value:
        return None
    return value


def store_rejects(conn: psycopg.Connection, run_id: int, rejects: list[Reject]) -> None:
    with conn.cursor().copy(
        "COPY etl.rejects (run_id, source_path, row_number, natural_key, reason, raw) FROM STDIN"
    ) as copy:
        for r in rejects:
            copy.write_row(
                (
                    run_id,
                    r.path,
                    r.row_number,
                    r.natural_key,
                    r.reason,
                    json.dumps(
                        {k: _json_value(v) for k, v in r.raw.items()},
                        default=str,
                        ensure_ascii=False,
                    ),
                )
            )
