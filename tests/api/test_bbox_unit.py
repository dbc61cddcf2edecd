"""The bbox parameter (sdi.api.bbox) without a database: corner order and the SQL condition."""

from __future__ import annotations

import pytest
from psycopg import sql

from sdi.api import bbox

EPSG_4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"  # latitude first
EPSG_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"


@pytest.mark.parametrize(
    ("given", "crs", "expected"),
    [
        ([107.0, 21.0, 107.1, 20.9], bbox.CRS84, [107.0, 20.9, 107.1, 21.0]),  # north first
        ([170.0, -1.0, -170.0, 1.0], bbox.CRS84, [170.0, -1.0, -170.0, 1.0]),  # antimeridian
        ([21.0, 107.1, 20.9, 107.0], EPSG_4326, [20.9, 107.1, 21.0, 107.0]),  # lat, lon
        ([1.0, 2.0, 0.0, 1.0], EPSG_3857, [0.0, 1.0, 1.0, 2.0]),  # metres: both axes
        ([107.0, 21.0, 0.0, 107.1, 20.9, 5.0], bbox.CRS84, [107.0, 20.9, 0.0, 107.1, 21.0, 5.0]),
    ],
)
def test_corners_are_put_in_order_except_across_the_antimeridian(given, crs, expected) -> None:
    assert bbox.corners_in_order(given, crs) == expected


def test_a_crs_pyproj_cannot_read_leaves_the_bbox_as_given() -> None:
    assert bbox.corners_in_order([2.0, 2.0, 1.0, 1.0], "urn:nothing") == [2.0, 2.0, 1.0, 1.0]


def test_the_condition_binds_the_corners_and_keeps_the_column_bare() -> None:
    where, params = bbox.condition(sql.Identifier("t", "geom"), [107.0, 20.9, 107.1, 21.0], 4326)
    assert where.as_string(None) == (
        'ST_Intersects("t"."geom", ST_MakeEnvelope(%(b0)s, %(b1)s, %(b2)s, %(b3)s, 4326))'
    )
    assert params == {"b0": 107.0, "b1": 20.9, "b2": 107.1, "b3": 21.0}


def test_a_box_across_the_antimeridian_is_two_envelopes() -> None:
    where, _ = bbox.condition(sql.Identifier("geom"), [170.0, -1.0, -170.0, 1.0], 4326)
    rendered = where.as_string(None)
    assert rendered.count("ST_MakeEnvelope") == 2 and " OR " in rendered
    # in a projected CRS west > east is only a box given backwards: one envelope
    where, _ = bbox.condition(sql.Identifier("geom"), [2.0, 0.0, 1.0, 1.0], 3857)
    assert where.as_string(None).count("ST_MakeEnvelope") == 1


def test_a_3d_box_loses_its_heights_and_a_short_one_is_refused() -> None:
    _, params = bbox.condition(sql.Identifier("geom"), [1.0, 2.0, 0.0, 3.0, 4.0, 9.0], 4326)
    assert params == {"b0": 1.0, "b1": 2.0, "b2": 3.0, "b3": 4.0}
    with pytest.raises(ValueError, match="4 numbers"):
        bbox.condition(sql.Identifier("geom"), [1.0, 2.0, 3.0], 4326)
