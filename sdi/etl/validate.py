"""Validation rules for geometries and keys; failing rows are flagged for the quarantine.

Invalid geometries are repaired where that is safe (``make_valid`` keeping the target's
dimension), and rejected otherwise; both are counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from sdi.etl.normalise import Issues

# Target geometry type (PostGIS) → the shapely type ids it accepts.
_FAMILIES = {
    "POINT": {0, 4},
    "MULTIPOINT": {0, 4},
    "LINESTRING": {1, 5},
    "MULTILINESTRING": {1, 5},
    "POLYGON": {3, 6},
    "MULTIPOLYGON": {3, 6},
}
_TYPE_NAMES = {
    0: "Point",
    1: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
    7: "GeometryCollection",
}


def _keep_dimension(geometry: shapely.Geometry, accepted: set[int]) -> shapely.Geometry | None:
    """The parts of a repaired geometry with the target's dimension (None if none are left)."""
    parts = [p for p in shapely.get_parts(geometry) if shapely.get_type_id(p) in accepted]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    dimension = shapely.get_dimensions(parts[0])
    if dimension == 2:
        return shapely.MultiPolygon([q for p in parts for q in shapely.get_parts(p)])
    if dimension == 1:
        return shapely.MultiLineString([q for p in parts for q in shapely.get_parts(p)])
    return shapely.MultiPoint([q for p in parts for q in shapely.get_parts(p)])


def check_geometry(
    geometry: np.ndarray, geometry_type: str, issues: Issues
) -> tuple[np.ndarray, np.ndarray]:
    """Flag missing, wrongly typed and irreparable geometries; repair the others.

    Returns the (repaired) geometries and the positions of those repaired.
    """
    missing = shapely.is_missing(geometry) | shapely.is_empty(geometry)
    issues.flag(missing, "no geometry")
    accepted = _FAMILIES[geometry_type.upper()]
    type_ids = shapely.get_type_id(geometry)
    wrong_type = ~missing & ~np.isin(type_ids, list(accepted))
    if wrong_type.any():
        got = pd.Series(type_ids).map(lambda t: _TYPE_NAMES.get(t, str(t))).to_numpy()
        issues.flag(wrong_type, "geometry is " + got + f", expected {geometry_type.title()}")

    invalid = np.flatnonzero(~missing & ~wrong_type & ~shapely.is_valid(geometry))
    repaired = []
    if invalid.size:
        geometry = geometry.copy()
        why = shapely.is_valid_reason(geometry[invalid])
        fixed = shapely.make_valid(geometry[invalid])
        for position, index in enumerate(invalid):
            kept = _keep_dimension(fixed[position], accepted)
            if kept is None or kept.is_empty:
                issues.flag(
                    np.arange(issues.size) == index,
                    f"invalid geometry that cannot be repaired: {why[position]}",
                )
            else:
                geometry[index] = kept
                repaired.append(index)
    return geometry, np.array(repaired, dtype=np.int64)


def check_bounds(
    box: np.ndarray, bounds: tuple[float, float, float, float], issues: Issues
) -> None:
    """Flag geometries whose ``box`` (west, south, east, north in lon/lat; NaN for none) is
    outside the expected extent: a wrong CRS or swapped axes."""
    with np.errstate(invalid="ignore"):
        west, south, east, north = bounds
        outside = (
            (box[:, 0] < west) | (box[:, 2] > east) | (box[:, 1] < south) | (box[:, 3] > north)
        )
    if not outside.any():
        return
    reasons = np.full(len(box), None, dtype=object)
    reasons[outside] = [
        f"outside the expected extent at lon/lat ({b[0]:.5f}, {b[1]:.5f}) (expected "
        f"{west}..{east} E, {south}..{north} N): check source.srid and X/Y order"
        for b in box[outside]
    ]
    issues.flag(outside, reasons)


class FirstSeen:
    """Remembers values (natural keys, geometries) of one delivery to flag later duplicates.

    Vectorised on 64-bit hashes of the values, kept sorted: a binary search answers "seen
    before?" for a whole batch (half the time of a Python set of the strings). Only rows whose
    hash was seen are looked at one by one: their value is compared with the earlier values of
    that hash — so a hash collision is never taken for a duplicate — and where it was first
    seen is found in the same pass, however many duplicates a delivery holds.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._seen = np.empty(0, dtype=np.int64)  # hashes of the first occurrences, sorted
        # first occurrences, batch by batch: file, values, row numbers, hashes
        self._batches: list[tuple[str, pa.Array, np.ndarray, np.ndarray]] = []
        self._contents: dict[object, int] = {}  # first contents of each key, when checked with them

    def check(
        self,
        keys: pd.Series,
        rows: np.ndarray,
        path: str,
        issues: Issues,
        contents: np.ndarray | None = None,
    ) -> np.ndarray:
        """Flag repeated keys; returns the rows to drop (exact repeats, only with ``contents``:
        a time series sending one reading twice). Other values for one key are a conflict."""
        values = pa.array(keys, from_pandas=True)
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        candidates = issues.ok & values.is_valid().to_numpy(zero_copy_only=False)
        hashes = (
            pd.util.hash_pandas_object(
                pd.Series(pd.arrays.ArrowExtensionArray(values)), index=False
            )
            .to_numpy()
            .view(np.int64)
        )
        at = np.searchsorted(self._seen, hashes)
        suspect = candidates & (at < len(self._seen))
        suspect[suspect] = self._seen[at[suspect]] == hashes[suspect]
        positions = np.flatnonzero(candidates)
        suspect[positions] |= pd.Series(hashes[positions]).duplicated(keep="first").to_numpy()
        first = self._first_occurrences(values, hashes, rows, path, candidates, suspect)
        duplicate = np.zeros(len(values), dtype=bool)
        drop = np.zeros(len(values), dtype=bool)
        reasons = np.full(len(values), None, dtype=object)
        earlier = self._batch_contents(values, hashes, candidates, first, contents)
        for position, where in first.items():
            key = values[position].as_py()
            if contents is not None and contents[position] == self._contents.get(
                key, earlier.get(key)
            ):
                drop[position] = True
                continue
            duplicate[position] = True
            shown = key if len(key) <= 40 else key[:40] + "…"
            reasons[position] = (
                f"conflicting duplicate {self.what} {shown!r}: other values than at {where}"
                if contents is not None
                else f"duplicate {self.what} {shown!r} (first seen at {where})"
            )
        fresh = candidates & ~duplicate & ~drop
        new = np.sort(hashes[fresh])
        self._seen = np.insert(self._seen, np.searchsorted(self._seen, new), new)  # linear
        kept = values.filter(pa.array(fresh))
        self._batches.append((path, kept, rows[fresh], hashes[fresh]))
        if contents is not None:
            self._contents.update(zip(kept.to_pylist(), contents[fresh].tolist(), strict=True))
        issues.flag(duplicate, reasons)
        return drop

    def _batch_contents(self, values, hashes, candidates, first, contents) -> dict:
        """The first contents of each repeated key: from earlier batches, or from its first
        row in this batch (a feed repeating its last line is an exact repeat, not a conflict)."""
        known: dict = {}
        if contents is None or not first:
            return known
        wanted = np.isin(hashes, hashes[list(first)])
        for position in np.flatnonzero(candidates & wanted):
            known.setdefault(values[int(position)].as_py(), contents[position])
        return known

    def _first_occurrences(
        self,
        values: pa.Array,
        hashes: np.ndarray,
        rows: np.ndarray,
        path: str,
        candidates: np.ndarray,
        suspect: np.ndarray,
    ) -> dict[int, str]:
        """The suspect rows that really repeat an earlier value → where it was first seen."""
        if not suspect.any():
            return {}
        wanted = np.unique(hashes[suspect])
        earlier: dict[int, list[tuple[object, str]]] = {}  # hash → (value, where) seen before
        for where_file, kept, kept_rows, kept_hashes in self._batches:
            for position in np.flatnonzero(np.isin(kept_hashes, wanted)):
                entry = (kept[int(position)].as_py(), f"{where_file} row {kept_rows[position]}")
                earlier.setdefault(int(kept_hashes[position]), []).append(entry)
        repeats = {}
        for position in np.flatnonzero(candidates & np.isin(hashes, wanted)):
            value, seen = (
                values[int(position)].as_py(),
                earlier.setdefault(int(hashes[position]), []),
            )
            match = next((where for other, where in seen if other == value), None)
            if match is not None and suspect[position]:
                repeats[int(position)] = match
            elif match is None:
                seen.append((value, f"{path} row {rows[position]}"))
        return repeats
