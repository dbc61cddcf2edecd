"""The CRS a delivered file declares itself, checked against the job's ``source.srid``.

A file that carries its own CRS (a Shapefile's ``.prj``, a GeoPackage's srs, a GeoJSON
``crs`` member, a GML ``srsName``) is compared with the spec: a wrong-but-plausible code
(EPSG:5898 on a 107°45' file moves every point about 26 km, inside the province) must not
load silently. The comparison is made where it matters, on the ground: a point of the file
is turned into latitude/longitude with each CRS's own projection (the datum shift left
out, so VN-2000 ``.prj`` files with or without TOWGS84 parameters still agree); more than
:data:`TOLERANCE_M` apart is a mismatch. ``srid_override: <reason>`` in the spec accepts it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from sdi.errors import ConfigError, SourceError

if TYPE_CHECKING:
    from pyproj import CRS

TOLERANCE_M = 10.0  # metres on the ground between the two readings of one point


@dataclass(frozen=True)
class CrsCheck:
    """What was found for one file: its own CRS (None: it declares none), the verdict."""

    path: str
    declared: str | None  # e.g. "EPSG:5899" or the CRS name of a .prj without a code
    spec_srid: int
    agrees: bool | None  # None: nothing to compare
    offset_m: float | None = None
    note: str = ""

    def as_json(self) -> dict:
        return {
            "file_crs": self.declared,
            "spec_srid": self.spec_srid,
            "agrees": self.agrees,
            "offset_m": None if self.offset_m is None else round(self.offset_m, 1),
            "note": self.note,
        }


@lru_cache(maxsize=64)
def spec_crs(srid: int):  # -> pyproj.CRS
    """The CRS of an EPSG code, or a clear error naming the code."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_epsg(srid)
    except CRSError:
        raise ConfigError(
            f"source.srid {srid} is not an EPSG code PROJ knows (VN-2000 / TM-3 107°45' is "
            "5899, 105°45' 5897, UTM 48N 3405, WGS 84 4326)"
        ) from None


def _label(crs) -> str:
    code = crs.to_epsg(min_confidence=70)
    return f"EPSG:{code} ({crs.name})" if code else f"{crs.name!r}"


def _on_ground(crs, x: float, y: float) -> tuple[float, float]:
    """(lon, lat) of a coordinate pair of ``crs`` on its own datum (no datum shift)."""
    from pyproj import Transformer

    geodetic = crs.geodetic_crs or crs
    return Transformer.from_crs(crs, geodetic, always_xy=True).transform(x, y)


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    if not all(map(math.isfinite, (*a, *b))):
        return math.inf
    lat = math.radians((a[1] + b[1]) / 2)
    dx = math.radians(a[0] - b[0]) * math.cos(lat) * 6_371_000
    dy = math.radians(a[1] - b[1]) * 6_371_000
    return math.hypot(dx, dy)


def file_crs(path: Path, layer: str | None) -> tuple[CRS | None, tuple[float, float] | None]:
    """The CRS the file declares (pyproj CRS or None) and a point of its data (the middle of
    its extent, in its own coordinates), from GDAL's metadata without reading features."""
    import pyogrio
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    from sdi.etl.readers.ogr import open_options

    options = open_options(path)
    try:
        # the extent only when the format knows it without a scan (a 1 M-feature GeoJSON
        # or GML is not read twice for this)
        with warnings.catch_warnings():  # "more than one layer": the reader says it better
            warnings.simplefilter("ignore", UserWarning)
            info = pyogrio.read_info(path, layer=layer, force_total_bounds=False, **options)
    except Exception:
        return None, None  # the reader says what is wrong with the file
    text = info.get("crs")
    bounds = info.get("total_bounds")
    point = None
    if bounds is not None and all(map(math.isfinite, bounds)):
        point = ((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    elif text:
        point = _first_point(path, layer, options)
    if not text:
        return None, point
    try:
        return CRS.from_user_input(text), point
    except CRSError:
        return None, point


def _first_point(path: Path, layer: str | None, options: dict) -> tuple[float, float] | None:
    """A coordinate of the first features that have a geometry (one small read)."""
    import shapely
    from pyogrio.raw import read

    try:
        _, _, wkb, _ = read(path, layer=layer, max_features=50, columns=[], **options)
    except Exception:
        return None
    for value in wkb if wkb is not None else []:
        if value is None:
            continue
        geometry = shapely.from_wkb(value)
        if not geometry.is_empty:
            point = shapely.get_coordinates(geometry)[0]
            return float(point[0]), float(point[1])
    return None


def check(path: Path, layer: str | None, srid: int, override: str | None) -> CrsCheck:
    """Compare the file's own CRS with ``srid``; a mismatch without ``override`` raises."""
    declared_crs = spec_crs(srid)
    own, point = file_crs(path, layer)
    if own is None:
        return CrsCheck(str(path), None, srid, None, note="the file declares no CRS")
    label = _label(own)
    if own.equals(declared_crs, ignore_axis_order=True) or own.to_epsg(min_confidence=90) == srid:
        return CrsCheck(str(path), label, srid, True, 0.0)
    if point is None:
        return CrsCheck(str(path), label, srid, None, note="no extent to compare on")
    try:
        offset = _distance_m(_on_ground(own, *point), _on_ground(declared_crs, *point))
    except Exception:  # a CRS PROJ cannot transform with: say so, do not guess
        offset = math.inf
    if offset <= TOLERANCE_M:
        return CrsCheck(
            str(path), label, srid, True, offset, note="same projection under another name"
        )
    if override:
        return CrsCheck(str(path), label, srid, False, offset, note=f"srid_override: {override}")
    distance = "an unmeasurable distance" if math.isinf(offset) else _shown(offset)
    raise SourceError(
        f"{path}: the file declares its CRS as {label}, but the job spec says source.srid "
        f"{srid} ({declared_crs.name}); read with {srid}, its features would land "
        f"{distance} from where the file itself puts them. Fix source.srid, or — if the "
        "file's own CRS is known to be wrong — add `srid_override: <why>` under source "
        "(the run records it)"
    )


def _shown(metres: float) -> str:
    return f"{metres / 1000:.1f} km" if metres >= 1000 else f"{metres:.0f} m"
