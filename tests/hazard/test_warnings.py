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

from datetime import timedelta

import psycopg
import pytest

from sdi.errors import WarehouseRefused
from sdi.hazard.warnings import recompute
from tests.support.flood_scenario import (
    EXPECTED,
    T0,
    check_exposure,
    current_warning,
    warning_events,
)


def test_crossing_level_ii_raises_one_warning_with_the_known_exposure(scenario_db, deliver) -> None:
    result = deliver(
        [
            ("T-G1", 0, 1.0),
            ("T-G1", 1, 2.5),  # alarm I
            ("T-G1", 2, 2.9),
            ("T-G1", 3, 3.2),  # alarm II
            ("T-G2", 3, 0.5),  # below alarm I: no warning
        ]
    )
    warning = current_warning(scenario_db)
    assert warning is not None and current_warning(scenario_db, "T-G2") is None
    assert (warning["level"], warning["level_label"]) == (2, "II")
    assert warning["water_level_m"] == 3.2 and warning["threshold_m"] == 3.0
    assert warning["next_threshold_m"] == 4.0
    assert warning["observed_at"] == T0 + timedelta(hours=3)
    assert warning["level_since"] == T0 + timedelta(hours=3)
    assert warning["alarm_since"] == T0 + timedelta(hours=1)
    assert (warning["peak_water_level_m"], warning["peak_at"]) == (3.2, T0 + timedelta(hours=3))
    assert warning["geometry_type"] == "ST_MultiPolygon"
    assert warning["run_id"] == result.run_id
    check_exposure(warning, 2, scenario_db)
    facilities = {
        (f["kind"], f["site"], f["ref"], f.get("name")) for f in warning["detail"]["facilities"]
    }
    assert facilities == {
        ("school", "parcel", "T-P3", "Trường T"),
        ("health", "building", "T-B5", "Trạm y tế T"),
        ("state_office", "parcel", "T-P4", None),
    }
    assert warning_events(scenario_db) == [("raised", 0, 2, result.run_id, warning["id"])]


def test_falling_below_level_i_clears_and_the_history_keeps_both(scenario_db, deliver) -> None:
    raised = deliver([("T-G1", 0, 1.0), ("T-G1", 1, 3.5)])
    warning = current_warning(scenario_db)
    assert warning["level"] == 2
    cleared = deliver([("T-G1", 2, 2.4), ("T-G1", 3, 1.9)])  # I, then below I
    assert current_warning(scenario_db) is None
    assert warning_events(scenario_db) == [
        ("raised", 0, 2, raised.run_id, warning["id"]),
        ("cleared", 2, 0, cleared.run_id, warning["id"]),
    ]
    # The raise was valid until the clear; the clear keeps what the warning covered.
    (raised_until, cleared_from, reason, buildings, has_area) = scenario_db.execute(
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
    as_of = scenario_db.execute(
        "SELECT level, water_level_m FROM hazard.warnings_as_of(etl.run_time(%s)) "
        "WHERE natural_key = 'T-G1'",
        (raised.run_id,),
    ).fetchall()
    assert as_of == [(2, 3.5)]
    assert (
        scenario_db.execute(
            "SELECT count(*) FROM hazard.warnings_as_of(etl.run_time(%s)) "
            "WHERE natural_key = 'T-G1'",
            (cleared.run_id,),
        ).fetchone()[0]
        == 0
    )


def test_escalation_and_de_escalation_keep_one_warning_and_follow_the_zones(
    scenario_db, deliver
) -> None:
    deliver([("T-G1", 0, 3.1)])
    first = current_warning(scenario_db)
    deliver([("T-G1", 1, 4.2)])  # alarm III: the 100-year zone
    escalated = current_warning(scenario_db)
    check_exposure(escalated, 3, scenario_db)
    assert escalated["level_since"] == T0 + timedelta(hours=1)
    assert escalated["alarm_since"] == T0
    deliver([("T-G1", 2, 3.6)])  # back to II
    back = current_warning(scenario_db)
    check_exposure(back, 2, scenario_db)
    assert back["level_since"] == T0  # II has held since the first reading
    assert back["peak_water_level_m"] == 4.2
    assert first["id"] == escalated["id"] == back["id"]
    assert [e[:3] for e in warning_events(scenario_db)] == [
        ("raised", 0, 2),
        ("escalated", 2, 3),
        ("de-escalated", 3, 2),
    ]


def test_a_late_reading_does_not_raise_a_false_warning(scenario_db, deliver) -> None:
    deliver([("T-G1", 0, 1.0), ("T-G1", 2, 1.2)])
    late = deliver([("T-G1", 1, 3.5)])  # above II, but older than the latest reading
    assert late.counts.added == 1
    assert current_warning(scenario_db) is None and warning_events(scenario_db) == []

    # During a warning, a late reading never becomes "the latest" either, and alarm_since
    # stays the start of the episode (the warning raised at hour 3), while level_since follows
    # the readings.
    deliver([("T-G1", 3, 2.5), ("T-G1", 4, 3.3), ("T-G1", 5, 3.4)])
    before = current_warning(scenario_db)
    assert before["alarm_since"] == T0 + timedelta(hours=3)
    assert before["level_since"] == T0 + timedelta(hours=4)
    deliver([("T-G1", 3.5, 1.5)])  # late, below I: the episode still began at hour 3
    after = current_warning(scenario_db)
    assert (after["observed_at"], after["water_level_m"], after["level"]) == (
        T0 + timedelta(hours=5),
        3.4,
        2,
    )
    assert after["alarm_since"] == T0 + timedelta(hours=3)
    assert after["level_since"] == T0 + timedelta(hours=4)
    assert after["id"] == before["id"]
    assert [e[0] for e in warning_events(scenario_db)] == ["raised"]


def test_duplicates_are_harmless(scenario_db, deliver) -> None:
    readings = [("T-G1", 0, 2.2), ("T-G1", 1, 3.3)]
    first = deliver(readings)
    version = scenario_db.execute(
        "SELECT version_id FROM hazard.warnings_current WHERE natural_key = 'T-G1'"
    ).fetchone()
    again = deliver(readings, force=True)  # the same delivery again
    assert (again.counts.added, again.counts.updated) == (0, 0)
    overlapping = deliver([readings[1], ("T-G1", 2, 3.3)])  # overlaps the previous one
    assert (overlapping.counts.added, overlapping.counts.updated) == (1, 0)
    # An exact duplicate row inside one delivery: dropped or quarantined, never stored twice.
    twice = deliver([("T-G1", 3, 3.4), ("T-G1", 3, 3.4)])
    assert (twice.counts.added, twice.rejected) == (1, 0)  # the repeat is dropped
    stored = scenario_db.execute(
        "SELECT count(*) FROM hazard.gauge_readings WHERE gauge_code = 'T-G1'"
    ).fetchone()[0]
    assert stored == 4
    assert [e[0] for e in warning_events(scenario_db)] == ["raised"]
    assert first.run_id < again.run_id
    warning = current_warning(scenario_db)
    assert (warning["water_level_m"], warning["level"]) == (3.4, 2)
    check_exposure(warning, 2, scenario_db)
    # The repeated delivery wrote no new version.
    assert version[0] in {
        v
        for (v,) in scenario_db.execute(
            "SELECT version_id FROM hazard.warnings WHERE natural_key = 'T-G1' AND run_id = %s",
            (first.run_id,),
        )
    }
    versions_by_run = dict(
        scenario_db.execute(
            "SELECT run_id, count(*) FROM hazard.warnings WHERE natural_key = 'T-G1' GROUP BY 1"
        ).fetchall()
    )
    assert again.run_id not in versions_by_run


def test_recompute_is_idempotent(scenario_db, deliver) -> None:
    load = deliver([("T-G1", 0, 2.0), ("T-G1", 1, 4.0)])
    state = "SELECT * FROM hazard.warnings ORDER BY version_id"
    events = "SELECT * FROM hazard.warning_history ORDER BY id"
    before = (scenario_db.execute(state).fetchall(), scenario_db.execute(events).fetchall())
    with scenario_db.transaction():
        first = recompute(scenario_db, load.run_id)
        second = recompute(scenario_db, load.run_id)
    for result in (first, second):
        assert result.events == 0 and result.changed == 0
        assert result.unchanged == result.active >= 1
    assert (scenario_db.execute(state).fetchall(), scenario_db.execute(events).fetchall()) == before
    check_exposure(current_warning(scenario_db), 3, scenario_db)


def test_the_recompute_command_is_recorded_as_a_run(scenario_db, deliver) -> None:
    from typer.testing import CliRunner

    from sdi.hazard.cli import RECOMPUTE_JOB, app

    deliver([("T-G1", 0, 3.5)])
    before = current_warning(scenario_db)
    done = CliRunner().invoke(app, ["recompute"])
    assert done.exit_code == 0, done.output
    run_id, status, message = scenario_db.execute(
        "SELECT run_id, status, message FROM etl.runs WHERE job = %s ORDER BY run_id DESC LIMIT 1",
        (RECOMPUTE_JOB,),
    ).fetchone()
    assert status == "succeeded" and f"run {run_id}: {message}" in done.output
    assert current_warning(scenario_db) == before  # nothing changed since the load's own recompute


def test_a_dry_run_changes_no_warning(scenario_db, deliver) -> None:
    deliver([("T-G1", 0, 1.0)])
    dry = deliver([("T-G1", 1, 3.5)], dry_run=True)
    assert dry.counts.added == 1
    assert current_warning(scenario_db) is None and warning_events(scenario_db) == []


def test_a_failed_recompute_rolls_the_readings_load_back(
    scenario_db, deliver, scenario, monkeypatch
):
    """Someone holds the warnings table; the load's recompute gives up after lock_timeout and
    the whole run — readings included — is rolled back, recorded as failed."""
    deliver([("T-G1", 0, 1.0)])
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=300ms")
    with psycopg.connect(scenario) as holder:
        holder.execute("LOCK TABLE hazard.warnings IN SHARE MODE")
        with pytest.raises(WarehouseRefused, match="lock"):
            deliver([("T-G1", 1, 3.5)])
    stored = scenario_db.execute(
        "SELECT count(*) FROM hazard.gauge_readings WHERE gauge_code = 'T-G1'"
    ).fetchone()[0]
    assert (
        stored == 1 and current_warning(scenario_db) is None and warning_events(scenario_db) == []
    )
    status, message = scenario_db.execute(
        "SELECT status, message FROM etl.runs WHERE job = 'hazard_gauge_readings_incremental' "
        "ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    assert status == "failed" and "lock" in message


def test_a_gauge_without_zones_warns_without_an_area_and_a_retired_gauge_clears(
    scenario_db, deliver
) -> None:
    load = deliver([("T-G2", 0, 1.5)])
    warning = current_warning(scenario_db, "T-G2")
    assert (warning["level"], warning["zone_codes"], warning["geometry_type"]) == (1, [], None)
    assert warning["buildings"] == 0 and "no flood zone" in warning["detail"]["note"]
    try:
        scenario_db.execute(
            "UPDATE hazard.gauges SET valid_to = now() WHERE natural_key = 'T-G2' "
            "AND valid_to IS NULL"
        )
        with scenario_db.transaction():
            result = recompute(scenario_db, load.run_id)
        assert result.cleared == 1
        assert current_warning(scenario_db, "T-G2") is None
        reason = scenario_db.execute(
            "SELECT reason FROM hazard.warning_history WHERE natural_key = 'T-G2' "
            "AND event = 'cleared'"
        ).fetchone()[0]
        assert "no longer in the gauge register" in reason
    finally:
        scenario_db.execute(
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
