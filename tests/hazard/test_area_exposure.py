"""The exposure of the risk levels' areas: counted on pieces of the areas (exact), kept in
hazard.area_exposure under the exposed layers' stamp, dropped and counted again when a layer
changes (sdi/hazard/risk.py, sdi/hazard/sql/exposure_stamp.sql)."""

from __future__ import annotations

import psycopg
import pytest

from sdi.hazard import risk
from sdi.hazard.exposure import exposure_of_many, exposure_stamp


def _independent(db: psycopg.Connection, commune: str) -> tuple[int, int, float]:
    """Buildings and parcels sharing a point with the commune, and the parcels' area inside
    it (m², province CRS), by one plain query on the whole polygon."""
    return db.execute(
        """SELECT (SELECT count(*) FROM construction.buildings_current b
                   WHERE ST_Intersects(b.geom, c.geom)),
                  (SELECT count(*) FROM land.parcels_current p
                   WHERE ST_Intersects(p.geom, c.geom)),
                  (SELECT coalesce(sum(ST_Area(ST_Intersection(ST_Transform(p.geom, 5899),
                                                               ST_Transform(c.geom, 5899)))), 0)
                   FROM land.parcels_current p WHERE ST_Intersects(p.geom, c.geom))
           FROM admin.communes_current c WHERE c.commune_code = %s""",
        (commune,),
    ).fetchone()


def _new_building(db: psycopg.Connection, key: str, commune: str, run_id: int) -> None:
    """A residential building at the commune's interior point, as a load would write it."""
    db.execute(
        """INSERT INTO construction.buildings (natural_key, building_code, use_type, floors,
               commune_code, run_id, valid_from, row_hash, geom)
           SELECT %(key)s, %(key)s, 'residential', 2, c.commune_code, %(run)s, now(),
                  md5(%(key)s)::uuid,
                  ST_Multi(ST_Buffer(ST_PointOnSurface(c.geom)::geography, 5)::geometry)
           FROM admin.communes_current c WHERE c.commune_code = %(commune)s""",
        {"key": key, "run": run_id, "commune": commune},
    )


@pytest.fixture()
def db(loaded: dict, migrated: str):
    with psycopg.connect(migrated) as conn:
        yield conn
        conn.rollback()


def test_the_exposure_of_a_whole_commune_equals_one_plain_query(db) -> None:
    # the commune with the longest boundary: cut into many pieces
    commune, wkb = db.execute(
        "SELECT commune_code, ST_AsBinary(ST_Multi(geom)) FROM admin.communes_current "
        "ORDER BY ST_NPoints(geom) DESC LIMIT 1"
    ).fetchone()
    figures = exposure_of_many(db, {"c": bytes(wkb)}, communes={"c": [commune]})["c"]
    buildings, parcels, area = _independent(db, commune)
    assert (figures["buildings"], figures["parcels"]) == (buildings, parcels)
    counted = sum(figures["parcel_area_by_group_m2"].values())
    assert counted == pytest.approx(float(area), rel=1e-6, abs=1.0)
    assert figures["detail"]["communes"] == [commune]


def test_commune_figures_are_kept_until_an_exposed_layer_changes(db) -> None:
    run_id = db.execute("SELECT max(run_id) FROM etl.runs").fetchone()[0]
    db.execute("DELETE FROM hazard.area_exposure")
    risk.recompute(db, run_id, trigger="manual")  # counts every commune
    stamp = exposure_stamp(db)
    missing = """SELECT count(*) FROM admin.communes_current c WHERE NOT EXISTS (
                     SELECT 1 FROM hazard.area_exposure e
                     WHERE e.area_md5 = md5(ST_AsBinary(ST_Multi(c.geom))) AND e.stamp = %s)"""
    assert db.execute(missing, (stamp,)).fetchone()[0] == 0
    rows = db.execute("SELECT min(stamp), max(stamp) FROM hazard.area_exposure")
    assert rows.fetchone() == (stamp, stamp)
    commune, wkb = db.execute(
        "SELECT commune_code, ST_AsBinary(ST_Multi(geom)) FROM admin.communes_current "
        "ORDER BY commune_code LIMIT 1"
    ).fetchone()
    before = db.execute(
        "SELECT (figures->>'buildings')::int FROM hazard.area_exposure WHERE area_md5 = md5(%s)",
        (bytes(wkb),),
    ).fetchone()[0]
    assert before == _independent(db, commune)[0]
    # a new building in the commune (a load of the layer): the stamp changes, the figures
    # under the old stamp go, and every commune is counted again
    _new_building(db, "T-AE-1", commune, run_id)
    assert exposure_stamp(db) != stamp
    risk.recompute(db, run_id, trigger="hazard.rain_readings")
    after = db.execute(
        "SELECT (figures->>'buildings')::int, stamp FROM hazard.area_exposure "
        "WHERE area_md5 = md5(%s)",
        (bytes(wkb),),
    ).fetchone()
    assert after == (before + 1, exposure_stamp(db))
    assert db.execute(missing, (exposure_stamp(db),)).fetchone()[0] == 0


def test_a_load_that_touched_some_communes_recounts_only_the_areas_near_them(db) -> None:
    """A parcels or buildings load reports the communes it touched: the figures of areas
    meeting them are counted again, the others are kept (restamped, not recounted) — in a
    national warehouse a province's delivery does not recount the nation."""
    run_id = db.execute("SELECT max(run_id) FROM etl.runs").fetchone()[0]
    db.execute("DELETE FROM hazard.area_exposure")
    risk.recompute(db, run_id, trigger="manual")  # every commune counted
    # the first commune, and the commune farthest from it
    (commune, wkb), (_, far_wkb) = db.execute(
        """WITH first AS (SELECT commune_code, geom FROM admin.communes_current
                          ORDER BY commune_code LIMIT 1)
           SELECT * FROM (SELECT f.commune_code, ST_AsBinary(ST_Multi(f.geom)) FROM first f) a
           UNION ALL
           SELECT * FROM (SELECT c.commune_code, ST_AsBinary(ST_Multi(c.geom))
                          FROM admin.communes_current c, first f
                          ORDER BY ST_Distance(c.geom, f.geom) DESC LIMIT 1) b"""
    ).fetchall()
    figures = (
        "SELECT (figures->>'buildings')::int, computed_at, stamp FROM hazard.area_exposure "
        "WHERE area_md5 = md5(%s)"
    )
    before, _, _ = db.execute(figures, (bytes(wkb),)).fetchone()
    far_before = db.execute(figures, (bytes(far_wkb),)).fetchone()
    _new_building(db, "T-AE-2", commune, run_id)
    stamp = exposure_stamp(db)
    risk.recompute(db, run_id, trigger="construction.buildings", communes=frozenset({commune}))
    assert db.execute(figures, (bytes(wkb),)).fetchone()[0::2] == (before + 1, stamp)
    far_after = db.execute(figures, (bytes(far_wkb),)).fetchone()
    assert far_after == (far_before[0], far_before[1], stamp)  # kept: same count, same time
    # a load that does not recompute the levels notes itself the same way
    db.execute("DELETE FROM construction.buildings WHERE natural_key = 'T-AE-2'")
    risk.note_load(db, "construction.buildings", frozenset({commune}))
    stamp = exposure_stamp(db)
    assert db.execute(figures, (bytes(wkb),)).fetchone() is None  # dropped: counted when needed
    assert db.execute(figures, (bytes(far_wkb),)).fetchone() == (*far_before[:2], stamp)
