"""A hand-made neighbourhood where every answer is known, refreshed and rolled back.

The fixture lies in a corner of the province extent where the samples have nothing (checked
first): one commune 99001, one zone planned for urban housing (ODT), four parcels, four
buildings, five permits, two nested flood zones, street lamps, a camera, a wifi hotspot and a
water-quality sensor with readings. Everything happens in one transaction that is rolled back,
so the session's warehouse is left as it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from sdi.planning import refresh

LON0, LAT0 = 106.45, 20.65  # inside SDI_PROVINCE_EXTENT, ~30 km from any sample feature
COMMUNE = "99001"


def lonlat(x_m: float, y_m: float) -> tuple[float, float]:
    """Metres east/north of the fixture's origin → lon/lat (local approximation)."""
    return (
        LON0 + x_m / (111_320 * math.cos(math.radians(LAT0))),
        LAT0 + y_m / 110_570,
    )


def box(x0: float, y0: float, x1: float, y1: float) -> str:
    corners = [lonlat(x0, y0), lonlat(x1, y0), lonlat(x1, y1), lonlat(x0, y1), lonlat(x0, y0)]
    return "MULTIPOLYGON(((" + ", ".join(f"{x} {y}" for x, y in corners) + ")))"


def point(x: float, y: float) -> str:
    lon, lat = lonlat(x, y)
    return f"POINT({lon} {lat})"


class Warehouse:
    """Inserts current feature versions with the bookkeeping columns filled in."""

    def __init__(self, conn: psycopg.Connection, run_id: int) -> None:
        self.conn, self.run_id = conn, run_id

    def add(self, table: str, key: str, wkt: str, **columns: object) -> int:
        names = ["natural_key", "commune_code", *columns]
        values = [key, COMMUNE, *columns.values()]
        placeholders = ", ".join(["%s"] * len(values))
        return self.conn.execute(
            f"INSERT INTO {table} ({', '.join(names)}, run_id, valid_from, row_hash, geom) "
            f"VALUES ({placeholders}, %s, now(), gen_random_uuid(), ST_GeomFromText(%s, 4326)) "
            "RETURNING id",
            [*values, self.run_id, wkt],
        ).fetchone()[0]


@pytest.fixture()
def neighbourhood(db: psycopg.Connection, loaded: dict) -> Iterator[dict]:
    with db.transaction(force_rollback=True):
        nearby = db.execute(
            "SELECT (SELECT count(*) FROM land.zoning_current WHERE geom && e)"
            " + (SELECT count(*) FROM land.parcels_current WHERE geom && e)"
            " + (SELECT count(*) FROM construction.buildings_current WHERE geom && e)"
            " + (SELECT count(*) FROM construction.permits_current WHERE geom && e)"
            " + (SELECT count(*) FROM hazard.flood_zones_current WHERE geom && e) "
            "FROM ST_Expand(ST_SetSRID(ST_MakePoint(%s, %s), 4326), 0.05) AS e",
            (LON0, LAT0),
        ).fetchone()[0]
        assert nearby == 0, "the fixture's corner of the province is not empty any more"
        run_id = db.execute(
            "INSERT INTO etl.runs (job, status) VALUES ('test_fixture', 'running') RETURNING run_id"
        ).fetchone()[0]
        w = Warehouse(db, run_id)
        ids: dict[str, int] = {"run": run_id}
        ids["commune"] = w.add(
            "admin.communes", COMMUNE, box(-500, -500, 1500, 1500), commune_name="Phường Thử"
        )
        w.add(
            "land.zoning",
            "QH-FIX-1",
            box(0, 0, 400, 400),
            zone_code="QH-FIX-1",
            planned_land_use="ODT",
            plan_id="QH-TEST-2040",
        )
        # Parcels (20 × 30 m lots) in the ODT zone, and one outside every zone.
        parcels = {
            "home": (["ODT"], (10, 10)),
            "garden": (["ODT", "CLN"], (40, 10)),  # CLN is not permitted in ODT: conflict
            "road": (["DGT"], (70, 10)),  # transport is permitted everywhere
            "farm": (["LUC"], (1000, 1000)),  # in no zone: not assessed
        }
        for name, (codes, (x, y)) in parcels.items():
            ids[f"parcel_{name}"] = w.add(
                "land.parcels",
                f"{COMMUNE}-1-{name}",
                box(x, y, x + 20, y + 30),
                sheet_no=1,
                parcel_no=len(ids),
                land_use_codes=codes,
                area_m2=600.0,
            )
        # Buildings (10 × 10 m) inside the lots.
        buildings = {
            "home": ((15, 15), 2012),  # has a permit: fine
            "garden": ((45, 15), 2015),  # no permit: no_permit
            "old": ((75, 15), 1980),  # no permit, before the register: built_before_register
            "late_permit": ((200, 200), 2010),  # a permit 7 years later: not its permit
        }
        for name, ((x, y), year) in buildings.items():
            ids[f"building_{name}"] = w.add(
                "construction.buildings",
                f"B-FIX-{name}",
                box(x, y, x + 10, y + 10),
                building_code=f"B-FIX-{name}",
                year_built=year,
                floors=3,
                footprint_m2=100.0,
            )
        today = date.today()
        permits = {
            "home": ((20, 20), date(2011, 6, 1)),  # at the home's centre, issued before
            "near_home": ((28, 20), date(2020, 3, 1)),  # 3 m east of the home: a building
            "late": ((205, 205), date(2017, 5, 1)),  # on late_permit's building, 7 years on
            "stalled": ((300, 300), date(2020, 1, 15)),  # nothing within 5 m: stalled
            "recent": ((320, 320), today - timedelta(days=60)),  # nothing yet, too recent
        }
        for name, ((x, y), issued) in permits.items():
            ids[f"permit_{name}"] = w.add(
                "construction.permits",
                f"GP-FIX-{name}",
                point(x, y),
                permit_no=f"GP-FIX-{name}",
                issued_on=issued,
                status="issued",
            )
        # Nested flood zones: the 10-year zone holds the home, the 100-year one home and garden.
        for period, east, depth in ((10, 35, "0.5-1"), (100, 65, "0-0.5")):
            ids[f"flood_{period}"] = w.add(
                "hazard.flood_zones",
                f"FZ-FIX-{period}",
                box(0, 0, east, 50),
                zone_code=f"FZ-FIX-{period}",
                return_period_years=period,
                depth_class=depth,
            )
        for n, status in enumerate(("on", "on", "fault")):
            w.add(
                "utility.street_lamps",
                f"L-FIX-{n}",
                point(100 + 30 * n, 0),
                lamp_code=f"L-FIX-{n}",
                status=status,
            )
        w.add(
            "utility.cameras",
            "CAM-FIX",
            point(100, 5),
            camera_code="CAM-FIX",
            status="online",
            kind="traffic",
        )
        w.add(
            "utility.wifi_hotspots",
            "WF-FIX",
            point(100, 10),
            hotspot_code="WF-FIX",
            status="offline",
        )
        w.add(
            "utility.env_sensors",
            "QT-FIX",
            point(150, 150),
            sensor_code="QT-FIX",
            kind="water_quality",
            status="online",
            parameters=["pH", "DO"],
        )
        t1 = datetime(2025, 10, 14, 23, 0, tzinfo=UTC)
        for parameter, at, value in (
            ("pH", t1 - timedelta(hours=1), 7.1),
            ("pH", t1, 7.4),
            ("DO", t1 - timedelta(hours=1), 5.6),
        ):
            db.execute(
                "INSERT INTO utility.env_readings (sensor_code, parameter, observed_at, value, "
                "unit, run_id) VALUES ('QT-FIX', %s, %s, %s, %s, %s)",
                (parameter, at, value, "mg/L" if parameter == "DO" else None, run_id),
            )
        ids["result"] = refresh(db, run_id=run_id, trigger="test")
        yield ids


def rows(db: psycopg.Connection, table: str, key: str = "natural_key") -> dict[str, tuple]:
    """The derived rows of the fixture's commune, by natural key."""
    cur = db.execute(f"SELECT * FROM {table} WHERE commune_code = %s", (COMMUNE,))
    names = [c.name for c in cur.description]
    return {r[names.index(key)]: dict(zip(names, r, strict=True)) for r in cur}


def test_one_parcel_conflicts_with_the_plan(db, neighbourhood) -> None:
    conflicts = rows(db, "planning.land_use_conflicts")
    assert list(conflicts) == [f"{COMMUNE}-1-garden"]
    garden = conflicts[f"{COMMUNE}-1-garden"]
    assert garden["id"] == neighbourhood["parcel_garden"]  # links back to the parcel
    assert garden["conflicting_codes"] == ["CLN"]
    assert (garden["zone_code"], garden["planned_land_use"], garden["plan_id"]) == (
        "QH-FIX-1",
        "ODT",
        "QH-TEST-2040",
    )
    assert garden["run_id"] == neighbourhood["run"]


def test_buildings_without_a_matching_permit(db, neighbourhood) -> None:
    found = {k: r["category"] for k, r in rows(db, "planning.buildings_without_permit").items()}
    assert found == {
        "B-FIX-garden": "no_permit",
        "B-FIX-old": "built_before_register",
        "B-FIX-late_permit": "no_permit",  # a permit 7 years after completion is not its own
    }


def test_one_stalled_permit(db, neighbourhood) -> None:
    stalled = rows(db, "planning.stalled_permits")
    assert list(stalled) == ["GP-FIX-stalled"]  # near_home: 3 m from a building; recent: new
    today = date.today()
    months = (today.year - 2020) * 12 + today.month - 1 - (today.day < 15)
    assert stalled["GP-FIX-stalled"]["months_since_issue"] == months


def test_parcels_and_buildings_in_nested_flood_zones(db, neighbourhood) -> None:
    parcels = rows(db, "planning.hazard_parcels")
    assert set(parcels) == {f"{COMMUNE}-1-home", f"{COMMUNE}-1-garden"}
    home, garden = parcels[f"{COMMUNE}-1-home"], parcels[f"{COMMUNE}-1-garden"]
    assert home["hazards"] == ["flood"]
    assert (home["flood_return_period_years"], home["flood_depth_class"]) == (10, "0.5-1")
    assert home["flood_zone_codes"] == ["FZ-FIX-10", "FZ-FIX-100"]
    assert (garden["flood_return_period_years"], garden["flood_zone_codes"]) == (
        100,
        ["FZ-FIX-100"],
    )
    buildings = rows(db, "planning.hazard_buildings")
    assert {k: r["flood_return_period_years"] for k, r in buildings.items()} == {
        "B-FIX-home": 10,
        "B-FIX-garden": 100,
    }


def test_commune_indicators(db, neighbourhood) -> None:
    (row,) = rows(db, "planning.commune_indicators").values()
    assert row["id"] == neighbourhood["commune"]
    assert (row["parcels"], row["parcel_area_m2"], row["buildings"]) == (4, 2400.0, 4)
    assert row["built_up_ratio"] == pytest.approx(400 / 2400)
    assert row["building_density_per_ha"] == pytest.approx(4 / 0.24)
    assert row["green_public_share"] == 0
    # Areas by group: home 600 + half of garden 300 residential, 300 + 600 agricultural (CLN,
    # LUC), 600 public use (DGT); entropy over the 11 groups.
    assert row["land_use_area_by_group_m2"] == {
        "residential": 900.0,
        "agricultural": 900.0,
        "public_use": 600.0,
    }
    shares = (900 / 2400, 900 / 2400, 600 / 2400)
    assert row["land_use_mix"] == pytest.approx(
        -sum(p * math.log(p) for p in shares) / math.log(11)
    )


def test_operations_summary(db, neighbourhood) -> None:
    (row,) = rows(db, "ops.commune_summary").values()
    assert (row["lamps"], row["lamps_on"], row["lamps_fault"], row["lamps_off"]) == (3, 2, 1, 0)
    assert row["lamps_by_status"] == {"on": 2, "fault": 1}
    assert (row["cameras"], row["cameras_online"], row["cameras_by_kind"]) == (1, 1, {"traffic": 1})
    assert (row["wifi_hotspots"], row["wifi_offline"]) == (1, 1)
    assert (row["sensors"], row["sensors_online"]) == (1, 1)
    latest = row["water_quality"]["QT-FIX"]
    assert latest["values"] == {"pH": 7.4, "DO": 5.6}  # the latest of each parameter
    assert latest["units"] == {"DO": "mg/L"}
    assert row["air_quality"] == {}
    assert row["latest_reading_at"] == datetime(2025, 10, 14, 23, 0, tzinfo=UTC)


def test_open_incidents_by_category_and_age(db, neighbourhood) -> None:
    if not db.execute("SELECT to_regclass('ops.incidents') IS NOT NULL").fetchone()[0]:
        pytest.skip("ops.incidents (migration 0007) is not in this warehouse yet")
    from sdi.planning import refresh_operations

    now = datetime.now(UTC)
    for category, status, age in (
        ("flooding", "new", timedelta(hours=2)),
        ("flooding", "assigned", timedelta(days=3)),
        ("fallen_tree", "new", timedelta(days=10)),
        ("flooding", "resolved", timedelta(hours=1)),  # resolved: not open
    ):
        db.execute(
            "INSERT INTO ops.incidents (category, status, description, reported_at, "
            "updated_at, commune_code, geom) VALUES (%s, %s, 'fixture', %s, %s, %s, "
            "ST_GeomFromText(%s, 4326))",
            (category, status, now - age, now - age, COMMUNE, point(50, 50)),
        )
    refresh_operations(db)
    (row,) = rows(db, "ops.commune_summary").values()
    assert (
        row["incidents_open"],
        row["incidents_open_lt_1d"],
        row["incidents_open_1_7d"],
        row["incidents_open_gt_7d"],
    ) == (3, 1, 1, 1)
    assert row["incidents_by_category"] == {
        "fallen_tree": {"open": 1, "lt_1d": 0, "1_7d": 0, "gt_7d": 1},
        "flooding": {"open": 2, "lt_1d": 1, "1_7d": 1, "gt_7d": 0},
    }
