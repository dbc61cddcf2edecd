"""Flood warnings (issue "Disaster warnings…", items 2, 3, 6, 7) against a hand-checked scenario.

A gauge of our own, T-G1 (alarm levels 2, 3 and 4 m), sits in an empty corner of the province
(Tiên Yên, far from the sample cities) with three nested square flood zones around it — 10-year
±200 m, 50-year ±500 m, 100-year ±1000 m, in VN-2000 / TM-3 — and a 200-year zone ±1500 m that
no level uses. Buildings, parcels, lamps, cameras and pipes are placed inside and outside the
zones, so what a warning at each level exposes is known by construction (the table below), and
is also checked against an independent PostGIS query. Readings go through the real ETL (the
incremental feed job); the scenario is removed at the end.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from sdi.errors import WarehouseRefused
from sdi.etl.runner import run_job
from sdi.etl.spec import load_job
from sdi.hazard import model
from sdi.hazard.warnings import recompute
from sdi.settings import Settings
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
def _at(x: float, y: float) -> str:
    return f"{E0 + x} {N0 + y}"


def _box(x0: float, y0: float, x1: float, y1: float) -> str:
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    return "POLYGON((" + ", ".join(_at(x, y) for x, y in ring) + "))"


def _to_storage(multi: bool) -> str:
    inner = "ST_Transform(ST_GeomFromText(%s, 5899), 4326)"
    return f"ST_Multi({inner})" if multi else inner


_RUN: list[int] = []
SCENARIO_TABLES = (
    "construction.buildings",
    "land.parcels",
    "utility.street_lamps",
    "utility.cameras",
    "utility.water_pipes",
    "hazard.flood_zones",
    "hazard.gauges",
)


def _feature(conn, table: str, key: str, values: dict, wkt: str, multi: bool) -> None:
    columns = ", ".join(values)
    marks = "".join(", %s" for _ in values)
    conn.execute(
        f"INSERT INTO {table} (natural_key, commune_code, run_id, valid_from, row_hash, geom, "
        f"{columns}) VALUES (%s, %s, %s, now(), md5(%s)::uuid, {_to_storage(multi)}{marks})",
        [key, COMMUNE, _RUN[0], key, wkt, *values.values()],
    )


def _remove_scenario(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM hazard.warning_history WHERE natural_key LIKE 'T-%'")
    conn.execute("DELETE FROM hazard.warnings WHERE natural_key LIKE 'T-%'")
    conn.execute("DELETE FROM hazard.gauge_readings WHERE gauge_code LIKE 'T-%'")
    for table in SCENARIO_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE natural_key LIKE 'T-%'")


@pytest.fixture(scope="module")
def scenario(loaded: dict, migrated: str) -> Iterator[str]:
    """The scenario's gauges, zones and exposed features (after the sample loads, which would
    retire them as missing from their deliveries). Yields the database URL."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        _remove_scenario(conn)
        _RUN[:] = [
            conn.execute(
                "INSERT INTO etl.runs (job, status, finished_at, message) "
                "VALUES ('test_hazard_scenario', 'succeeded', clock_timestamp(), "
                "'hand-made flood-warning scenario of tests/hazard') RETURNING run_id"
            ).fetchone()[0]
        ]
        for code, ((x, y), (a1, a2, a3)) in GAUGES.items():
            _feature(
                conn,
                "hazard.gauges",
                code,
                {
                    "gauge_code": code,
                    "name": f"Trạm thử {code}",
                    "alarm_level_1": a1,
                    "alarm_level_2": a2,
                    "alarm_level_3": a3,
                },
                f"POINT({_at(x, y)})",
                multi=False,
            )
        for code, (period, half, gauge) in ZONES.items():
            _feature(
                conn,
                "hazard.flood_zones",
                code,
                {"zone_code": code, "return_period_years": period, "gauge_code": gauge},
                _box(-half, -half, half, half),
                multi=True,
            )
        for code, (box, use, floors, name) in BUILDINGS.items():
            _feature(
                conn,
                "construction.buildings",
                code,
                {"building_code": code, "use_type": use, "floors": floors, "name": name},
                _box(*box),
                multi=True,
            )
        for n, (key, (box, codes)) in enumerate(PARCELS.items(), 1):
            _feature(
                conn,
                "land.parcels",
                key,
                {"sheet_no": 1, "parcel_no": n, "land_use_codes": codes},
                _box(*box),
                multi=True,
            )
        for code, (x, y) in LAMPS.items():
            _feature(
                conn,
                "utility.street_lamps",
                code,
                {"lamp_code": code},
                f"POINT({_at(x, y)})",
                False,
            )
        for code, (x, y) in CAMERAS.items():
            _feature(
                conn, "utility.cameras", code, {"camera_code": code}, f"POINT({_at(x, y)})", False
            )
        for code, (a, b) in PIPES.items():
            _feature(
                conn,
                "utility.water_pipes",
                code,
                {"pipe_code": code},
                f"LINESTRING({_at(*a)}, {_at(*b)})",
                multi=True,
            )
    try:
        yield migrated
    finally:
        with psycopg.connect(migrated, autocommit=True) as conn:
            _remove_scenario(conn)


@pytest.fixture()
def db(scenario: str) -> Iterator[psycopg.Connection]:
    """A connection; every test starts with no readings and no warnings of the scenario."""
    with psycopg.connect(scenario, autocommit=True) as conn:
        conn.execute("DELETE FROM hazard.warning_history WHERE natural_key LIKE 'T-%'")
        conn.execute("DELETE FROM hazard.warnings WHERE natural_key LIKE 'T-%'")
        conn.execute("DELETE FROM hazard.gauge_readings WHERE gauge_code LIKE 'T-%'")
        yield conn


@pytest.fixture()
def deliver(scenario: str, settings: Settings, tmp_path: Path):
    """Deliver readings [(gauge, hours after T0, level)] through the real feed job."""
    count = [0]

    def run(readings: list[tuple[str, float, float]], **options):
        count[0] += 1
        source = tmp_path / f"delivery-{count[0]}"
        (source / "hazard").mkdir(parents=True)
        with (source / "hazard" / "gauge_readings_recent.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["gauge_id", "observed_at", "water_level_m"])
            for gauge, hours, level in readings:
                writer.writerow([gauge, (T0 + timedelta(hours=hours)).isoformat(), level])
        local = settings.model_copy(update={"source_dir": source})
        result = run_job(load_job(FEED, local), scenario, settings=local, **options)
        assert result.status == "succeeded", result.message
        return result

    return run


# -- reading the results -------------------------------------------------------------------------
def _current(db: psycopg.Connection, gauge: str = "T-G1") -> dict | None:
    cursor = db.execute(
        "SELECT *, ST_GeometryType(geom) AS geometry_type FROM hazard.warnings_current "
        "WHERE natural_key = %s",
        (gauge,),
    )
    row = cursor.fetchone()
    return dict(zip([c.name for c in cursor.description], row, strict=True)) if row else None


def _events(db: psycopg.Connection, gauge: str = "T-G1") -> list[tuple]:
    return db.execute(
        "SELECT event, level_from, level_to, run_id, warning_id FROM hazard.warning_history "
        "WHERE natural_key = %s ORDER BY id",
        (gauge,),
    ).fetchall()


def _independent_exposure(db: psycopg.Connection, gauge: str, period: int) -> dict:
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


def _check_exposure(warning: dict, level: int, db: psycopg.Connection) -> None:
    expected = EXPECTED[level]
    for key in expected.keys() - {"water_pipes_m", "zone_area_m2", "agricultural_m2"}:
        assert warning[key] == expected[key], key
    assert warning["water_pipes_m"] == pytest.approx(expected["water_pipes_m"], abs=0.01)
    assert warning["zone_area_m2"] == pytest.approx(expected["zone_area_m2"], rel=1e-6)
    agricultural = warning["parcel_area_by_group_m2"]["agricultural"]
    assert agricultural == pytest.approx(expected["agricultural_m2"], abs=0.5)

    independent = _independent_exposure(db, "T-G1", expected["return_period_years"])
    for key in independent.keys() - {"water_pipes_m", "zone_area_m2"}:
        assert warning[key] == independent[key], key
    assert warning["water_pipes_m"] == pytest.approx(independent["water_pipes_m"], abs=0.05)
    assert warning["zone_area_m2"] == pytest.approx(independent["zone_area_m2"], abs=1)


# -- the tests -----------------------------------------------------------------------------------
def test_crossing_level_ii_raises_one_warning_with_the_known_exposure(db, deliver) -> None:
    result = deliver(
        [
            ("T-G1", 0, 1.0),
            ("T-G1", 1, 2.5),  # alarm I
            ("T-G1", 2, 2.9),
            ("T-G1", 3, 3.2),  # alarm II
            ("T-G2", 3, 0.5),  # below alarm I: no warning
        ]
    )
    warning = _current(db)
    assert warning is not None and _current(db, "T-G2") is None
    assert (warning["level"], warning["level_label"]) == (2, "II")
    assert warning["water_level_m"] == 3.2 and warning["threshold_m"] == 3.0
    assert warning["next_threshold_m"] == 4.0
    assert warning["observed_at"] == T0 + timedelta(hours=3)
    assert warning["level_since"] == T0 + timedelta(hours=3)
    assert warning["alarm_since"] == T0 + timedelta(hours=1)
    assert (warning["peak_water_level_m"], warning["peak_at"]) == (3.2, T0 + timedelta(hours=3))
    assert warning["geometry_type"] == "ST_MultiPolygon"
    assert warning["run_id"] == result.run_id
    _check_exposure(warning, 2, db)
    facilities = {
        (f["kind"], f["site"], f["ref"], f.get("name")) for f in warning["detail"]["facilities"]
    }
    assert facilities == {
        ("school", "parcel", "T-P3", "Trường T"),
        ("health", "building", "T-B5", "Trạm y tế T"),
        ("state_office", "parcel", "T-P4", None),
    }
    assert _events(db) == [("raised", 0, 2, result.run_id, warning["id"])]


def test_falling_below_level_i_clears_and_the_history_keeps_both(db, deliver) -> None:
    raised = deliver([("T-G1", 0, 1.0), ("T-G1", 1, 3.5)])
    warning = _current(db)
    assert warning["level"] == 2
    cleared = deliver([("T-G1", 2, 2.4), ("T-G1", 3, 1.9)])  # I, then below I
    assert _current(db) is None
    assert _events(db) == [
        ("raised", 0, 2, raised.run_id, warning["id"]),
        ("cleared", 2, 0, cleared.run_id, warning["id"]),
    ]
    # The raise was valid until the clear; the clear keeps what the warning covered.
    (raised_until, cleared_from, reason, buildings, has_area) = db.execute(
        """
        SELECT r.valid_to, c.valid_from, c.reason, c.buildings, c.geom IS NOT NULL
        FROM hazard.warning_history r, hazard.warning_history c
        WHERE r.natural_key = 'T-G1' AND r.event = 'raised'
          AND c.natural_key = 'T-G1' AND c.event = 'cleared'
        """
    ).fetchone()
    assert raised_until == cleared_from
    assert "below alarm level I" in reason and buildings == EXPECTED[2]["buildings"] and has_area
    # Every version stays queryable: the warning as it stood right after the first load.
    as_of = db.execute(
        "SELECT level, water_level_m FROM hazard.warnings_as_of(etl.run_time(%s)) "
        "WHERE natural_key = 'T-G1'",
        (raised.run_id,),
    ).fetchall()
    assert as_of == [(2, 3.5)]
    assert (
        db.execute(
            "SELECT count(*) FROM hazard.warnings_as_of(etl.run_time(%s)) "
            "WHERE natural_key = 'T-G1'",
            (cleared.run_id,),
        ).fetchone()[0]
        == 0
    )


def test_escalation_and_de_escalation_keep_one_warning_and_follow_the_zones(db, deliver) -> None:
    deliver([("T-G1", 0, 3.1)])
    first = _current(db)
    deliver([("T-G1", 1, 4.2)])  # alarm III: the 100-year zone
    escalated = _current(db)
    _check_exposure(escalated, 3, db)
    assert escalated["level_since"] == T0 + timedelta(hours=1)
    assert escalated["alarm_since"] == T0
    deliver([("T-G1", 2, 3.6)])  # back to II
    back = _current(db)
    _check_exposure(back, 2, db)
    assert back["level_since"] == T0  # II has held since the first reading
    assert back["peak_water_level_m"] == 4.2
    assert first["id"] == escalated["id"] == back["id"]
    assert [e[:3] for e in _events(db)] == [
        ("raised", 0, 2),
        ("escalated", 2, 3),
        ("de-escalated", 3, 2),
    ]


def test_a_late_reading_does_not_raise_a_false_warning(db, deliver) -> None:
    deliver([("T-G1", 0, 1.0), ("T-G1", 2, 1.2)])
    late = deliver([("T-G1", 1, 3.5)])  # above II, but older than the latest reading
    assert late.counts.added == 1
    assert _current(db) is None and _events(db) == []

    # During a warning, a late reading never becomes "the latest" either, and alarm_since
    # stays the start of the episode (the warning raised at hour 3), while level_since follows
    # the readings.
    deliver([("T-G1", 3, 2.5), ("T-G1", 4, 3.3), ("T-G1", 5, 3.4)])
    before = _current(db)
    assert before["alarm_since"] == T0 + timedelta(hours=3)
    assert before["level_since"] == T0 + timedelta(hours=4)
    deliver([("T-G1", 3.5, 1.5)])  # late, below I: the episode still began at hour 3
    after = _current(db)
    assert (after["observed_at"], after["water_level_m"], after["level"]) == (
        T0 + timedelta(hours=5),
        3.4,
        2,
    )
    assert after["alarm_since"] == T0 + timedelta(hours=3)
    assert after["level_since"] == T0 + timedelta(hours=4)
    assert after["id"] == before["id"]
    assert [e[0] for e in _events(db)] == ["raised"]


def test_duplicates_are_harmless(db, deliver) -> None:
    readings = [("T-G1", 0, 2.2), ("T-G1", 1, 3.3)]
    first = deliver(readings)
    version = db.execute(
        "SELECT version_id FROM hazard.warnings_current WHERE natural_key = 'T-G1'"
    ).fetchone()
    again = deliver(readings, force=True)  # the same delivery again
    assert (again.counts.added, again.counts.updated) == (0, 0)
    overlapping = deliver([readings[1], ("T-G1", 2, 3.3)])  # overlaps the previous one
    assert (overlapping.counts.added, overlapping.counts.updated) == (1, 0)
    # An exact duplicate row inside one delivery: dropped or quarantined, never stored twice.
    twice = deliver([("T-G1", 3, 3.4), ("T-G1", 3, 3.4)])
    assert (twice.counts.added, twice.rejected) == (1, 0)  # the repeat is dropped
    stored = db.execute(
        "SELECT count(*) FROM hazard.gauge_readings WHERE gauge_code = 'T-G1'"
    ).fetchone()[0]
    assert stored == 4
    assert [e[0] for e in _events(db)] == ["raised"]
    assert first.run_id < again.run_id
    warning = _current(db)
    assert (warning["water_level_m"], warning["level"]) == (3.4, 2)
    _check_exposure(warning, 2, db)
    # The repeated delivery wrote no new version.
    assert version[0] in {
        v
        for (v,) in db.execute(
            "SELECT version_id FROM hazard.warnings WHERE natural_key = 'T-G1' AND run_id = %s",
            (first.run_id,),
        )
    }
    versions_by_run = dict(
        db.execute(
            "SELECT run_id, count(*) FROM hazard.warnings WHERE natural_key = 'T-G1' GROUP BY 1"
        ).fetchall()
    )
    assert again.run_id not in versions_by_run


def test_recompute_is_idempotent(db, deliver) -> None:
    load = deliver([("T-G1", 0, 2.0), ("T-G1", 1, 4.0)])
    state = "SELECT * FROM hazard.warnings ORDER BY version_id"
    events = "SELECT * FROM hazard.warning_history ORDER BY id"
    before = (db.execute(state).fetchall(), db.execute(events).fetchall())
    with db.transaction():
        first = recompute(db, load.run_id)
        second = recompute(db, load.run_id)
    for result in (first, second):
        assert result.events == 0 and result.changed == 0
        assert result.unchanged == result.active >= 1
    assert (db.execute(state).fetchall(), db.execute(events).fetchall()) == before
    _check_exposure(_current(db), 3, db)


def test_the_recompute_command_is_recorded_as_a_run(db, deliver) -> None:
    from typer.testing import CliRunner

    from sdi.hazard.cli import RECOMPUTE_JOB, app

    deliver([("T-G1", 0, 3.5)])
    before = _current(db)
    done = CliRunner().invoke(app, ["recompute"])
    assert done.exit_code == 0, done.output
    run_id, status, message = db.execute(
        "SELECT run_id, status, message FROM etl.runs WHERE job = %s ORDER BY run_id DESC LIMIT 1",
        (RECOMPUTE_JOB,),
    ).fetchone()
    assert status == "succeeded" and f"run {run_id}: {message}" in done.output
    assert _current(db) == before  # nothing changed since the load's own recompute


def test_a_dry_run_changes_no_warning(db, deliver) -> None:
    deliver([("T-G1", 0, 1.0)])
    dry = deliver([("T-G1", 1, 3.5)], dry_run=True)
    assert dry.counts.added == 1
    assert _current(db) is None and _events(db) == []


def test_a_failed_recompute_rolls_the_readings_load_back(db, deliver, scenario, monkeypatch):
    """Someone holds the warnings table; the load's recompute gives up after lock_timeout and
    the whole run — readings included — is rolled back, recorded as failed."""
    deliver([("T-G1", 0, 1.0)])
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=300ms")
    with psycopg.connect(scenario) as holder:
        holder.execute("LOCK TABLE hazard.warnings IN SHARE MODE")
        with pytest.raises(WarehouseRefused, match="lock"):
            deliver([("T-G1", 1, 3.5)])
    stored = db.execute(
        "SELECT count(*) FROM hazard.gauge_readings WHERE gauge_code = 'T-G1'"
    ).fetchone()[0]
    assert stored == 1 and _current(db) is None and _events(db) == []
    status, message = db.execute(
        "SELECT status, message FROM etl.runs WHERE job = 'hazard_gauge_readings_incremental' "
        "ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    assert status == "failed" and "lock" in message


def test_a_gauge_without_zones_warns_without_an_area_and_a_retired_gauge_clears(
    db, deliver
) -> None:
    load = deliver([("T-G2", 0, 1.5)])
    warning = _current(db, "T-G2")
    assert (warning["level"], warning["zone_codes"], warning["geometry_type"]) == (1, [], None)
    assert warning["buildings"] == 0 and "no flood zone" in warning["detail"]["note"]
    try:
        db.execute(
            "UPDATE hazard.gauges SET valid_to = now() WHERE natural_key = 'T-G2' "
            "AND valid_to IS NULL"
        )
        with db.transaction():
            result = recompute(db, load.run_id)
        assert result.cleared == 1
        assert _current(db, "T-G2") is None
        reason = db.execute(
            "SELECT reason FROM hazard.warning_history WHERE natural_key = 'T-G2' "
            "AND event = 'cleared'"
        ).fetchone()[0]
        assert "no longer in the gauge register" in reason
    finally:
        db.execute(
            "UPDATE hazard.gauges SET valid_to = NULL WHERE natural_key = 'T-G2' "
            "AND version_id = (SELECT max(version_id) FROM hazard.gauges "
            "WHERE natural_key = 'T-G2')"
        )


# -- the sample data and the OGC API -------------------------------------------------------------
def test_the_sample_readings_raise_exactly_the_g_hl_01_warning_at_level_ii(
    loaded, migrated
) -> None:
    with psycopg.connect(migrated) as conn:
        rows = conn.execute(
            "SELECT natural_key, level_label, buildings > 0, residents_estimate > 0 "
            "FROM hazard.warnings_current WHERE natural_key NOT LIKE 'T-%'"
        ).fetchall()
    assert rows == [("G-HL-01", "II", True, True)]


def test_warnings_and_their_history_are_ogc_api_collections(api) -> None:
    body = api.get(
        "/collections/warnings/items", params={"f": "json", "gauge_code": "G-HL-01"}
    ).json()
    assert body["numberMatched"] == 1
    (feature,) = body["features"]
    assert feature["geometry"]["type"] == "MultiPolygon"
    assert feature["properties"]["level_label"] == "II"
    assert feature["properties"]["buildings"] > 0
    history = api.get(
        "/collections/warning_history/items",
        params={"f": "json", "gauge_code": "G-HL-01", "event": "raised"},
    ).json()
    assert history["numberMatched"] >= 1
    assert history["features"][0]["properties"]["level_to"] == 2
