"""The hand-checked flood-warning scenario of tests/hazard: a gauge of our own (T-G1) in an
empty corner of the province, nested square flood zones around it and features placed inside and
outside them, so what a warning exposes is known by construction (``EXPECTED``).
Plain data and helpers; the fixtures that build it are in tests/hazard/conftest.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from sdi.hazard import model
from tests.conftest import PROJECT_DIR

FEED = PROJECT_DIR / "etl" / "feeds" / "hazard_gauge_readings_incremental.yml"
E0, N0 = 463_500.0, 2_359_530.0  # EPSG:5899, Xã Tiên Yên: no sample feature within 5 km
COMMUNE = "99999"
ICT = timezone(timedelta(hours=7))
T0 = datetime(2030, 6, 1, 0, 0, tzinfo=ICT)
GAUGES = {  # code: (offset of the gauge, alarm levels I, II, III)
    "T-G1": ((0, 0), (2.0, 3.0, 4.0)),
    "T-G2": ((0, 4000), (1.0, 2.0, 3.0)),  # no flood zone linked
}
ZONES = {  # code: (return period, half side in metres, gauge)
    "T-FZ-10": (10, 200, "T-G1"),
    "T-FZ-50": (50, 500, "T-G1"),
    "T-FZ-100": (100, 1000, "T-G1"),
    "T-FZ-200": (200, 1500, "T-G1"),
}
# buildings: code → (x0, y0, x1, y1) in metres from the gauge, use, floors, name
BUILDINGS = {
    "T-B1": ((-5, -5, 5, 5), "residential", 3, None),  # 10-year zone
    "T-B2": ((295, -5, 305, 5), "residential", 5, None),  # 50
    "T-B3": ((-305, 95, -295, 105), "residential", None, None),  # 50, no floor count
    "T-B4": ((-5, 295, 5, 305), "education", 2, "Trường T"),  # 50, on the school parcel
    "T-B5": ((345, -355, 355, -345), "health", 1, "Trạm y tế T"),  # 50, on no DYT parcel
    "T-B8": ((495, -5, 505, 5), "residential", 2, None),  # straddles the 50-year edge
    "T-B6": ((695, -5, 705, 5), "commercial", 4, None),  # 100
    "T-B7": ((1995, 1995, 2005, 2005), "office", 3, None),  # outside every zone
}
# parcels: key → (x0, y0, x1, y1), land-use codes
PARCELS = {
    "T-P1": ((-10, -10, 10, 10), ["ODT"]),  # 10
    "T-P2": ((285, -15, 315, 15), ["ONT", "CLN"]),  # 50, two groups
    "T-P3": ((-20, 280, 20, 320), ["DGD"]),  # 50, the school's parcel
    "T-P4": ((-315, -315, -285, -285), ["TSC"]),  # 50, an office parcel with no building
    "T-P5": ((480, -20, 520, 20), ["LUC"]),  # straddles the 50-year edge: 800 m² inside
    "T-P6": ((785, 785, 815, 815), ["DYT"]),  # 100
    "T-P7": ((2985, -15, 3015, 15), ["ODT"]),  # outside
}
LAMPS = {"T-L1": (0, 50), "T-L2": (400, 400), "T-L3": (600, 0), "T-L4": (-5000, 0)}
CAMERAS = {"T-C1": (10, -50), "T-C2": (900, 900)}
PIPES = {"T-W1": ((-600, -100), (600, -100)), "T-W2": ((100, 600), (100, 1200))}

# What a warning of T-G1 exposes at each level, by construction.
EXPECTED = {
    2: {
        "zone_codes": ["T-FZ-10", "T-FZ-50"],
        "return_period_years": 50,
        "buildings": 6,
        "buildings_by_use": {"residential": 4, "education": 1, "health": 1},
        "residential_floors": 3 + 5 + 1 + 2,
        "residents_estimate": round(11 * model.PERSONS_PER_FLOOR),
        "parcels": 5,
        "parcels_by_group": {
            "residential": 2,
            "agricultural": 2,
            "public_service": 1,
            "state_offices": 1,
        },
        "schools": 1,
        "health_facilities": 1,
        "state_offices": 1,
        "critical_facilities": 3,
        "street_lamps": 2,
        "cameras": 1,
        "water_pipes_m": 1000.0,
        "zone_area_m2": 1000.0 * 1000.0,
        "agricultural_m2": 30 * 30 + 20 * 40,  # T-P2 whole, T-P5 half
    },
    3: {
        "zone_codes": ["T-FZ-10", "T-FZ-50", "T-FZ-100"],
        "return_period_years": 100,
        "buildings": 7,
        "buildings_by_use": {"residential": 4, "education": 1, "health": 1, "commercial": 1},
        "residential_floors": 11,
        "residents_estimate": round(11 * model.PERSONS_PER_FLOOR),
        "parcels": 6,
        "parcels_by_group": {
            "residential": 2,
            "agricultural": 2,
            "public_service": 2,
            "state_offices": 1,
        },
        "schools": 1,
        "health_facilities": 2,  # T-B5 (a building site) and T-P6 (a parcel site)
        "state_offices": 1,
        "critical_facilities": 4,
        "street_lamps": 3,
        "cameras": 2,
        "water_pipes_m": 1200.0 + 400.0,
        "zone_area_m2": 2000.0 * 2000.0,
        "agricultural_m2": 30 * 30 + 40 * 40,
    },
}


# -- the scenario --------------------------------------------------------------------------------
def lonlat(x: float, y: float) -> str:
    return f"{E0 + x} {N0 + y}"


def box_wkt(x0: float, y0: float, x1: float, y1: float) -> str:
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    return "POLYGON((" + ", ".join(lonlat(x, y) for x, y in ring) + "))"


def to_storage(multi: bool) -> str:
    inner = "ST_Transform(ST_GeomFromText(%s, 5899), 4326)"
    return f"ST_Multi({inner})" if multi else inner


SCENARIO_RUN: list[int] = []
SCENARIO_TABLES = (
    "construction.buildings",
    "land.parcels",
    "utility.street_lamps",
    "utility.cameras",
    "utility.water_pipes",
    "hazard.flood_zones",
    "hazard.gauges",
)


def add_feature(conn, table: str, key: str, values: dict, wkt: str, multi: bool) -> None:
    columns = ", ".join(values)
    marks = "".join(", %s" for _ in values)
    conn.execute(
        f"INSERT INTO {table} (natural_key, commune_code, run_id, valid_from, row_hash, geom, "
        f"{columns}) VALUES (%s, %s, %s, now(), md5(%s)::uuid, {to_storage(multi)}{marks})",
        [key, COMMUNE, SCENARIO_RUN[0], key, wkt, *values.values()],
    )


def remove_scenario(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM hazard.warning_history WHERE natural_key LIKE 'T-%'")
    conn.execute("DELETE FROM hazard.warnings WHERE natural_key LIKE 'T-%'")
    conn.execute("DELETE FROM hazard.gauge_readings WHERE gauge_code LIKE 'T-%'")
    for table in SCENARIO_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE natural_key LIKE 'T-%'")


# -- reading the results -------------------------------------------------------------------------
def current_warning(db: psycopg.Connection, gauge: str = "T-G1") -> dict | None:
    cursor = db.execute(
        "SELECT *, ST_GeometryType(geom) AS geometry_type FROM hazard.warnings_current "
        "WHERE natural_key = %s",
        (gauge,),
    )
    row = cursor.fetchone()
    return dict(zip([c.name for c in cursor.description], row, strict=True)) if row else None


def warning_events(db: psycopg.Connection, gauge: str = "T-G1") -> list[tuple]:
    return db.execute(
        "SELECT event, level_from, level_to, run_id, warning_id FROM hazard.warning_history "
        "WHERE natural_key = %s ORDER BY id",
        (gauge,),
    ).fetchall()


def independent_exposure(db: psycopg.Connection, gauge: str, period: int) -> dict:
    """The same figures from one plain query on the zones as published, not the recompute."""
    row = db.execute(
        """
        WITH z AS (
            SELECT ST_Union(geom) AS g FROM hazard.flood_zones_current
            WHERE gauge_code = %(gauge)s AND return_period_years <= %(period)s
        )
        SELECT
          (SELECT count(*) FROM construction.buildings_current b, z
             WHERE ST_Intersects(b.geom, z.g)),
          (SELECT coalesce(sum(greatest(coalesce(floors, 1), 1)), 0)
             FROM construction.buildings_current b, z
             WHERE ST_Intersects(b.geom, z.g) AND use_type = 'residential'),
          (SELECT count(*) FROM land.parcels_current p, z WHERE ST_Intersects(p.geom, z.g)),
          (SELECT count(*) FROM utility.street_lamps_current l, z WHERE ST_Intersects(l.geom, z.g)),
          (SELECT count(*) FROM utility.cameras_current c, z WHERE ST_Intersects(c.geom, z.g)),
          (SELECT coalesce(sum(ST_Length(ST_Transform(ST_Intersection(w.geom, z.g), 5899))), 0)
             FROM utility.water_pipes_current w, z WHERE ST_Intersects(w.geom, z.g)),
          (SELECT ST_Area(ST_Transform(z.g, 5899)) FROM z)
        """,
        {"gauge": gauge, "period": period},
    ).fetchone()
    names = ("buildings", "residential_floors", "parcels", "street_lamps", "cameras")
    return dict(zip((*names, "water_pipes_m", "zone_area_m2"), row, strict=True))


def check_exposure(warning: dict, level: int, db: psycopg.Connection) -> None:
    expected = EXPECTED[level]
    for key in expected.keys() - {"water_pipes_m", "zone_area_m2", "agricultural_m2"}:
        assert warning[key] == expected[key], key
    assert warning["water_pipes_m"] == pytest.approx(expected["water_pipes_m"], abs=0.01)
    assert warning["zone_area_m2"] == pytest.approx(expected["zone_area_m2"], rel=1e-6)
    agricultural = warning["parcel_area_by_group_m2"]["agricultural"]
    assert agricultural == pytest.approx(expected["agricultural_m2"], abs=0.5)

    independent = independent_exposure(db, "T-G1", expected["return_period_years"])
    for key in independent.keys() - {"water_pipes_m", "zone_area_m2"}:
        assert warning[key] == independent[key], key
    assert warning["water_pipes_m"] == pytest.approx(independent["water_pipes_m"], abs=0.05)
    assert warning["zone_area_m2"] == pytest.approx(independent["zone_area_m2"], abs=1)


# -- the tests -----------------------------------------------------------------------------------
