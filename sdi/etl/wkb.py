"""Reproject delivered WKB where it lies, without making geometry objects of it.

The storage geometry of a row is its delivered WKB with every coordinate replaced by the
reprojected one (and, for a MULTI… column, a one-part multi header in front of a single
geometry). Finding the coordinates needs only the WKB's structure: for little-endian 2D
points, lines and polygons (and their multi forms) — what GDAL hands over for almost every
delivery — this module walks the structure of a whole batch at once with numpy, gathers the
coordinates, reprojects them in one call and writes them back into a copy of the bytes.

Compared with shapely (``set_coordinates`` on the decoded geometries, ``to_wkb``, a multi
header per row, one Python ``bytes`` per row) it takes a fraction of the CPU
(``docs/etl-performance.md``), all of it numpy and PROJ, which release the GIL. Anything
else — big-endian or 3D WKB, curves, collections, empty points, rings left open (shapely
closes them when it decodes), bytes that do not parse — is not "usable", and the caller takes
those rows through shapely.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

POINT, LINESTRING, POLYGON, MULTIPOINT, MULTILINESTRING, MULTIPOLYGON = range(1, 7)
_SINGLE_OF = {MULTIPOINT: POINT, MULTILINESTRING: LINESTRING, MULTIPOLYGON: POLYGON}
_BYTE = np.arange(4)

Transform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class _Walk:
    """Cursors through the WKB of many geometries at once; a geometry whose bytes do not
    parse as expected is marked bad and dropped from the walk."""

    def __init__(self, data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        self.data = data
        self.ends = ends
        self.bad = np.zeros(len(starts), dtype=bool)
        self.run_starts: list[np.ndarray] = []  # byte offset of a run's first x
        self.run_lengths: list[np.ndarray] = []  # points in the run
        self.run_owners: list[np.ndarray] = []  # geometry of the run

    def _fits(self, cursor: np.ndarray, owner: np.ndarray, size: np.ndarray | int) -> np.ndarray:
        fits = cursor + size <= self.ends[owner]
        self.bad[owner[~fits]] = True
        return fits

    def u32(self, cursor: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """The little-endian uint32 at each cursor (0 where it would read past the end)."""
        fits = self._fits(cursor, owner, 4)
        at = np.where(fits, cursor, 0)
        values = self.data[at[:, None] + _BYTE].view("<u4").ravel().astype(np.int64)
        return np.where(fits, values, 0)

    def header(self, cursor: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """The geometry type after a little-endian byte-order mark (-1 where it is not one)."""
        fits = self._fits(cursor, owner, 5)
        order = self.data[np.where(fits, cursor, 0)]
        kind = self.u32(cursor + 1, owner)
        little = fits & (order == 1)
        self.bad[owner[~little]] = True
        return np.where(little, kind, -1)

    def keep(self, owner: np.ndarray) -> np.ndarray:
        return ~self.bad[owner]

    def points(self, cursor: np.ndarray, owner: np.ndarray, count: np.ndarray) -> np.ndarray:
        """Record a run of ``count`` points at each cursor; the cursors after them."""
        fits = self._fits(cursor, owner, 16 * count)
        self.run_starts.append(cursor[fits])
        self.run_lengths.append(count[fits])
        self.run_owners.append(owner[fits])
        return cursor + 16 * count

    def line(self, cursor: np.ndarray, owner: np.ndarray, ring: bool) -> np.ndarray:
        count = self.u32(cursor, owner)
        start = cursor + 4
        if ring:  # at least 4 points, the last one equal to the first
            fits = self._fits(start, owner, 16 * count) & (count >= 4)
            self.bad[owner[~fits]] = True
            first = np.where(fits, start, 0)[:, None] + np.arange(16)
            last = np.where(fits, start + 16 * (count - 1), 0)[:, None] + np.arange(16)
            closed = (self.data[first] == self.data[last]).all(axis=1)
            self.bad[owner[~closed]] = True
        return self.points(start, owner, count)

    def polygon(self, cursor: np.ndarray, owner: np.ndarray) -> np.ndarray:
        rings = self.u32(cursor, owner)
        cursor = cursor + 4
        ring = 0
        while True:
            active = np.flatnonzero((rings > ring) & self.keep(owner))
            if not active.size:
                return cursor
            cursor[active] = self.line(cursor[active], owner[active], ring=True)
            ring += 1

    def body(self, kind: int, cursor: np.ndarray, owner: np.ndarray) -> np.ndarray:
        """Walk the body of geometries of one single type; the cursors after them."""
        if kind == POINT:
            fits = self._fits(cursor, owner, 16)
            at = np.where(fits, cursor, 0)[:, None] + np.arange(16)
            empty = np.isnan(self.data[at].view("<f8")).any(axis=1)  # POINT EMPTY is NaN NaN
            self.bad[owner[empty]] = True
            return self.points(cursor, owner, np.ones(len(cursor), dtype=np.int64))
        if kind == LINESTRING:
            return self.line(cursor, owner, ring=False)
        return self.polygon(cursor, owner)


@dataclass(frozen=True)
class Layout:
    """Where the coordinates of a batch's WKB are."""

    data: np.ndarray  # uint8: the WKB of every geometry, end to end
    offsets: np.ndarray  # int64, one more than geometries: where each one starts
    types: np.ndarray  # WKB geometry type of each geometry (-1: not usable)
    usable: np.ndarray  # bool: rewritten here (the others go through shapely)
    point_offsets: np.ndarray  # int64: byte offset of each usable point's x, by geometry
    first_point: np.ndarray  # int64: index of each usable geometry's first point

    @classmethod
    def parse(cls, wkb: pa.BinaryArray, candidates: np.ndarray) -> Layout:
        """The layout of the WKB (nulls allowed) of the ``candidates`` rows."""
        _, offsets_buffer, data_buffer = wkb.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[wkb.offset :][: len(wkb) + 1]
        offsets = offsets.astype(np.int64)
        data = np.frombuffer(data_buffer or b"", dtype=np.uint8)
        candidates = candidates & wkb.is_valid().to_numpy(zero_copy_only=False)
        lengths = np.diff(offsets)
        walk = _Walk(data, offsets[:-1], offsets[1:])
        owner = np.flatnonzero(candidates & (lengths >= 9))
        walk.bad[~candidates | (lengths < 9)] = True
        types = np.full(len(wkb), -1, dtype=np.int64)
        types[owner] = walk.header(offsets[owner], owner)
        cursor = offsets[owner] + 5
        for kind in (POINT, LINESTRING, POLYGON):
            these = (types[owner] == kind) & walk.keep(owner)
            cursor[these] = walk.body(kind, cursor[these], owner[these])
        for multi, single in _SINGLE_OF.items():
            these = np.flatnonzero((types[owner] == multi) & walk.keep(owner))
            if not these.size:
                continue
            parts = walk.u32(cursor[these], owner[these])
            cursor[these] += 4
            part = 0
            while True:
                active = these[(parts > part) & walk.keep(owner[these])]
                if not active.size:
                    break
                kinds = walk.header(cursor[active], owner[active])
                walk.bad[owner[active][kinds != single]] = True
                active = active[walk.keep(owner[active])]
                cursor[active] += 5
                cursor[active] = walk.body(single, cursor[active], owner[active])
                part += 1
        walk.bad[owner[~np.isin(types[owner], list(range(1, 7)))]] = True
        walk.bad[owner[cursor != offsets[owner + 1]]] = True  # trailing bytes
        runs = np.concatenate(walk.run_starts) if walk.run_starts else np.zeros(0, np.int64)
        counts = np.concatenate(walk.run_lengths) if walk.run_lengths else runs
        owners = np.concatenate(walk.run_owners) if walk.run_owners else runs
        walk.bad[np.bincount(owners, counts, minlength=len(wkb)) == 0] = True  # no point
        usable = ~walk.bad
        types[~usable] = -1
        keep = usable[owners]
        runs, counts, owners = runs[keep], counts[keep], owners[keep]
        order = np.argsort(runs, kind="stable")  # byte order is geometry order
        runs, counts, owners = runs[order], counts[order], owners[order]
        # each run's points: its start + 16 × 0, 1, …
        total = int(counts.sum())
        run_of_point = np.repeat(np.arange(len(runs)), counts)
        before = np.zeros(len(runs), dtype=np.int64)
        np.cumsum(counts[:-1], out=before[1:])
        point_offsets = runs[run_of_point] + 16 * (np.arange(total) - before[run_of_point])
        first_point = np.searchsorted(np.repeat(owners, counts), np.flatnonzero(usable))
        return cls(data, offsets, types, usable, point_offsets, first_point)

    def _views(self, data: np.ndarray) -> list[np.ndarray]:
        """The bytes as float64 starting at each of the 8 alignments."""
        return [data[r : r + 8 * ((len(data) - r) // 8)].view("<f8") for r in range(8)]

    def reproject(self, transform: Transform | None) -> tuple[np.ndarray, np.ndarray]:
        """The WKB bytes with every usable coordinate reprojected, and each usable geometry's
        bounds afterwards (west, south, east, north; one row per usable geometry)."""
        points = self.point_offsets
        alignment = points % 8
        x = np.empty(len(points))
        y = np.empty(len(points))
        views = self._views(self.data)
        groups = [
            (r, these, (points[these] - r) // 8)
            for r in np.flatnonzero(np.bincount(alignment, minlength=8))
            for these in [np.flatnonzero(alignment == r)]
        ]
        for r, these, at in groups:
            x[these], y[these] = views[r][at], views[r][at + 1]
        data = self.data
        if transform is not None:
            x, y = transform(x, y)
            data = self.data.copy()
            views = self._views(data)
            for r, these, at in groups:
                views[r][at], views[r][at + 1] = x[these], y[these]
        bounds = np.empty((len(self.first_point), 4))
        if len(points):
            first = self.first_point
            bounds[:, 0] = np.minimum.reduceat(x, first)
            bounds[:, 1] = np.minimum.reduceat(y, first)
            bounds[:, 2] = np.maximum.reduceat(x, first)
            bounds[:, 3] = np.maximum.reduceat(y, first)
        return data, bounds

    def arrow(self, data: np.ndarray) -> pa.BinaryArray:
        """The (rewritten) bytes as one WKB value per geometry; not usable ones are null."""
        validity = pa.array(self.usable).buffers()[1]
        offsets = self.offsets.astype(np.int32)
        return pa.BinaryArray.from_buffers(
            pa.binary(),
            len(self.usable),
            [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
        )


# WKB header of a one-part multi geometry, by the type of the single geometry inside
_MULTI_HEADERS = pa.array(
    [b""]
    + [
        b"\x01" + multi.to_bytes(4, "little") + (1).to_bytes(4, "little")
        for multi in (MULTIPOINT, MULTILINESTRING, MULTIPOLYGON)
    ],
    pa.binary(),
)


def as_multi(wkb: pa.BinaryArray, types: np.ndarray) -> pa.BinaryArray:
    """Single geometries (WKB type 1–3 in ``types``) wrapped as one-part multi geometries,
    as ST_Multi does; others unchanged.

    >>> point = bytes.fromhex("0101000000000000000000f03f0000000000000040")
    >>> as_multi(pa.array([point], pa.binary()), np.array([1]))[0].as_py().hex()[:18]
    '010400000001000000'
    """
    header = np.where((types >= 1) & (types <= 3), types, 0)
    headers = _MULTI_HEADERS.take(pa.array(header))
    return pc.binary_join_element_wise(headers, wkb, pa.scalar(b"", pa.binary()))
