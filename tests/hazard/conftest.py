"""Fixtures of the hazard tests: the flood-warning scenario (tests/support/flood_scenario.py)
built once per module, a connection that starts each test with no scenario readings, and a
delivery of readings through the real feed job."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from sdi.etl.runner import run_job
from sdi.etl.spec import load_job
from sdi.settings import Settings
from tests.support.flood_scenario import (
    BUILDINGS,
    CAMERAS,
    FEED,
    GAUGES,
    LAMPS,
    PARCELS,
    PIPES,
    SCENARIO_RUN,
    T0,
    ZONES,
    add_feature,
    box_wkt,
    lonlat,
    remove_scenario,
)


@pytest.fixture(scope="module")
def scenario(loaded: dict, migrated: str) -> Iterator[str]:
    """The scenario's gauges, zones and exposed features (after the sample loads, which would
    retire them as missing from their deliveries). Yields the database URL."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        remove_scenario(conn)
        SCENARIO_RUN[:] = [
            conn.execute(
                "INSERT INTO etl.runs (job, status, finished_at, message) "
                "VALUES ('test_hazard_scenario', 'succeeded', clock_timestamp(), "
                "'hand-made flood-warning scenario of tests/hazard') RETURNING run_id"
            ).fetchone()[0]
        ]
        for code, ((x, y), (a1, a2, a3)) in GAUGES.items():
            add_feature(
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
                f"POINT({lonlat(x, y)})",
                multi=False,
            )
        for code, (period, half, gauge) in ZONES.items():
            add_feature(
                conn,
                "hazard.flood_zones",
                code,
                {"zone_code": code, "return_period_years": period, "gauge_code": gauge},
                box_wkt(-half, -half, half, half),
                multi=True,
            )
        for code, (box, use, floors, name) in BUILDINGS.items():
            add_feature(
                conn,
                "construction.buildings",
                code,
                {"building_code": code, "use_type": use, "floors": floors, "name": name},
                box_wkt(*box),
                multi=True,
            )
        for n, (key, (box, codes)) in enumerate(PARCELS.items(), 1):
            add_feature(
                conn,
                "land.parcels",
                key,
                {"sheet_no": 1, "parcel_no": n, "land_use_codes": codes},
                box_wkt(*box),
                multi=True,
            )
        for code, (x, y) in LAMPS.items():
            add_feature(
                conn,
                "utility.street_lamps",
                code,
                {"lamp_code": code},
                f"POINT({lonlat(x, y)})",
                False,
            )
        for code, (x, y) in CAMERAS.items():
            add_feature(
                conn,
                "utility.cameras",
                code,
                {"camera_code": code},
                f"POINT({lonlat(x, y)})",
                False,
            )
        for code, (a, b) in PIPES.items():
            add_feature(
                conn,
                "utility.water_pipes",
                code,
                {"pipe_code": code},
                f"LINESTRING({lonlat(*a)}, {lonlat(*b)})",
                multi=True,
            )
    try:
        yield migrated
    finally:
        with psycopg.connect(migrated, autocommit=True) as conn:
            remove_scenario(conn)


@pytest.fixture()
def scenario_db(scenario: str) -> Iterator[psycopg.Connection]:
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
