"""Delivered WKB reprojected where it lies (sdi/etl/wkb.py) must equal what shapely writes;
what it cannot take must be left to shapely, not mangled."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import shapely
from pyproj import Transformer

from sdi.etl.wkb import Layout, as_multi

TO_LONLAT = Transformer.from_crs("EPSG:5899", "EPSG:4326", always_xy=True)

SQUARE = [(440000, 2320000), (440100, 2320000), (440100, 2320100), (440000, 2320100)]
HOLE = [(440010, 2320010), (440020, 2320010), (440020, 2320020), (440010, 2320010)]
USABLE = {
    "point": shapely.Point(440000.5, 2320000.25),
    "line": shapely.LineString(SQUARE),
    "polygon with a hole": shapely.Polygon(SQUARE, [HOLE]),
    "multipoint": shapely.MultiPoint(SQUARE),
    "multiline": shapely.MultiLineString([SQUARE, SQUARE[:2]]),
    "multipolygon": shapely.MultiPolygon(
        [shapely.Polygon(SQUARE, [HOLE]), shapely.box(441000, 2321000, 441050, 2321070)]
    ),
}


def _wkb(geometry: shapely.Geometry, **options) -> bytes:
    return shapely.to_wkb(geometry, byte_order=1, **options)


def _unclosed_ring() -> bytes:
    """A polygon whose ring does not end where it starts (GDAL hands such rings over)."""
    ring = np.array(SQUARE, dtype="<f8")
    return (
        b"\x01"
        + (3).to_bytes(4, "little")
        + (1).to_bytes(4, "little")
        + len(ring).to_bytes(4, "little")
        + ring.tobytes()
    )


NOT_USABLE = {
    "big-endian": shapely.to_wkb(shapely.box(0, 0, 1, 1), byte_order=0),
    "3D": _wkb(shapely.Point(1, 2, 3), output_dimension=3),
    "collection": _wkb(shapely.GeometryCollection([shapely.Point(1, 2)])),
    "empty point": _wkb(shapely.Point()),
    "empty polygon": _wkb(shapely.Polygon()),
    "unclosed ring": _unclosed_ring(),
    "truncated": _wkb(shapely.box(0, 0, 1, 1))[:-5],
    "trailing bytes": _wkb(shapely.box(0, 0, 1, 1)) + b"\x00",
    "huge count": b"\x01\x02\x00\x00\x00\xff\xff\xff\x7f" + b"\x00" * 32,
    "missing": None,
}


def test_usable_wkb_is_rewritten_exactly_as_shapely_writes_it() -> None:
    geometries = list(USABLE.values())
    wkb = pa.array([_wkb(g) for g in geometries] * 3, pa.binary())
    layout = Layout.parse(wkb, np.ones(len(wkb), dtype=bool))
    assert layout.usable.all()
    data, bounds = layout.reproject(TO_LONLAT.transform)
    rewritten = layout.arrow(data).to_pylist()
    expected = shapely.transform(np.array(geometries * 3), TO_LONLAT.transform, interleaved=False)
    assert rewritten == [_wkb(g) for g in expected]
    np.testing.assert_array_equal(bounds, shapely.bounds(expected))


def test_what_it_cannot_take_is_marked_not_usable() -> None:
    square = _wkb(shapely.box(440000, 2320000, 440001, 2320001))
    wkb = pa.array([square, *NOT_USABLE.values(), square], pa.binary())
    layout = Layout.parse(wkb, np.ones(len(wkb), dtype=bool))
    usable = dict(zip(["first", *NOT_USABLE, "last"], layout.usable.tolist(), strict=True))
    assert usable == {"first": True, **dict.fromkeys(NOT_USABLE, False), "last": True}
    data, bounds = layout.reproject(TO_LONLAT.transform)
    array = layout.arrow(data)
    assert array.null_count == len(NOT_USABLE)
    assert array[0].as_py() == array[len(wkb) - 1].as_py()
    # a slice of a larger array (as a batch's first slices are) reads the same
    sliced = Layout.parse(wkb.slice(len(wkb) - 2), np.ones(2, dtype=bool))
    assert sliced.usable.tolist() == [False, True]
    assert sliced.arrow(sliced.reproject(None)[0])[1].as_py() == square
    assert bounds.shape == (2, 4)


def test_rows_not_asked_for_are_skipped() -> None:
    wkb = pa.array([_wkb(g) for g in USABLE.values()], pa.binary())
    candidates = np.arange(len(wkb)) % 2 == 0
    layout = Layout.parse(wkb, candidates)
    assert layout.usable.tolist() == candidates.tolist()
    data, _ = layout.reproject(None)  # same CRS: the bytes as delivered
    assert layout.arrow(data).to_pylist() == [
        w if c else None for w, c in zip(wkb.to_pylist(), candidates, strict=True)
    ]


@pytest.mark.parametrize("name", ["point", "line", "polygon with a hole", "multipolygon"])
def test_as_multi_writes_what_st_multi_would(name: str) -> None:
    geometry = USABLE[name]
    parts = shapely.get_parts(geometry)
    multi = {0: shapely.MultiPoint, 1: shapely.MultiLineString, 3: shapely.MultiPolygon}
    kind = shapely.get_type_id(geometry)
    expected = _wkb(multi[kind](parts) if kind in multi else geometry)
    wkb_type = int.from_bytes(_wkb(geometry)[1:5], "little")
    result = as_multi(pa.array([_wkb(geometry)], pa.binary()), np.array([wkb_type]))
    assert result[0].as_py() == expected
