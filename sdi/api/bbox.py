"""The ``bbox`` parameter: its corners put in order, and the condition it makes in SQL.

One reading of a bbox for every query that takes one (``/items``, EDR ``/locations``): two
opposite corners in any order mean the same box, except on a longitude axis, where a first
value east of the second is a box across the antimeridian (OGC API Features 1.0, the bbox
parameter), answered as two envelopes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from psycopg import sql

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


@lru_cache(maxsize=32)
def _longitude_axes(uri: str) -> tuple[bool, ...]:
    """For each axis of a CRS, whether it is a longitude (where west > east means a box
    crossing the antimeridian)."""
    from pygeoapi.crs import get_crs

    crs = get_crs(uri)
    return tuple(
        crs.is_geographic and axis.direction.lower() in ("east", "west") for axis in crs.axis_info
    )


def corners_in_order(bbox: list[float], crs_uri: str = CRS84) -> list[float]:
    """The bbox with each axis's lower value first; longitudes are kept as given.

    A bbox is two opposite corners; a client that sends them in another order (north before
    south) means the same box. A longitude west > east is a box across the antimeridian
    (OGC API Features 1.0, the bbox parameter), which :func:`condition` splits in two.

    >>> corners_in_order([107.1, 21.0, 107.0, 20.9])
    [107.1, 20.9, 107.0, 21.0]
    """
    half = len(bbox) // 2
    try:
        longitude = _longitude_axes(crs_uri)
    except Exception:  # a CRS pyproj cannot read: pygeoapi reports it when it transforms
        return list(bbox)
    out = list(bbox)
    for i in range(half):
        is_longitude = i < len(longitude) and longitude[i]
        if not is_longitude and out[i] > out[i + half]:
            out[i], out[i + half] = out[i + half], out[i]
    return out


def condition(
    geometry: sql.Composable, bbox: list[float], srid: int
) -> tuple[sql.Composable, dict[str, Any]]:
    """``ST_Intersects`` of a geometry column with a 2D bbox in the column's CRS (the GiST
    index is used), and its parameters ``b0`` … ``b3``. A 3D bbox's heights are dropped; a
    first longitude east of the second (in EPSG:4326) crosses the antimeridian: two envelopes.

    >>> where, params = condition(sql.Identifier("geom"), [170.0, -1.0, -170.0, 1.0], 4326)
    >>> where.as_string(None).count("ST_MakeEnvelope"), params["b2"]
    (2, -170.0)
    """
    if len(bbox) == 6:
        bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
    if len(bbox) != 4:
        raise ValueError("bbox must have 4 numbers")

    def envelope(west: sql.Composable, east: sql.Composable) -> sql.Composable:
        return sql.SQL("ST_Intersects({}, ST_MakeEnvelope({}, %(b1)s, {}, %(b3)s, {}))").format(
            geometry, west, east, sql.Literal(srid)
        )

    west, east = sql.Placeholder("b0"), sql.Placeholder("b2")
    clause: sql.Composable
    if bbox[0] > bbox[2] and srid == 4326:
        clause = sql.SQL("({} OR {})").format(
            envelope(west, sql.Literal(180.0)), envelope(sql.Literal(-180.0), east)
        )
    else:
        clause = envelope(west, east)
    return clause, {f"b{i}": float(v) for i, v in enumerate(bbox)}
