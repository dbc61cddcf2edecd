"""A reading that cannot be true never raises a warning (issue 15, item 7).

The independent flood scenario of the issue, through the real feed job: a 999 m and a −5 m
water level, a reading of an unknown gauge, a feed file repeating its last line, a jump and a
stuck sensor. Each implausible reading is rejected with its reason (``etl.rejects``), the
credible ones are stored, and the warnings, their history and the change feed never see the
impossible ones.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg

from tests.support.flood_scenario import T0, current_warning, warning_events


def _rejects(scenario_db: psycopg.Connection, run_id: int) -> list[str]:
    return [
        r
        for (r,) in scenario_db.execute(
            "SELECT reason FROM etl.rejects WHERE run_id = %s ORDER BY row_number", (run_id,)
        )
    ]


def _stored(scenario_db: psycopg.Connection) -> list[float]:
    return [
        v
        for (v,) in scenario_db.execute(
            "SELECT water_level_m FROM hazard.gauge_readings WHERE gauge_code = 'T-G1' "
            "ORDER BY observed_at"
        )
    ]


def test_out_of_range_levels_are_rejected_and_raise_nothing(scenario_db, deliver) -> None:
    deliver([("T-G1", 0, 1.0)])
    run = deliver(
        [
            ("T-G1", 1, 999.0),
            ("T-G1", 2, -5.0),
            ("T-G1", 3, 1.1),
            ("T-G1", 4, 1.2),
            ("T-G1", 5, 1.3),
        ]
    )
    assert run.rejected == 2 and run.counts.added == 3
    reasons = _rejects(scenario_db, run.run_id)
    assert len(reasons) == 2
    assert all("outside the station's physical range (-2 to 15)" in r for r in reasons)
    assert "999" in reasons[0] and "-5" in reasons[1]
    assert _stored(scenario_db) == [1.0, 1.1, 1.2, 1.3]
    assert current_warning(scenario_db) is None and warning_events(scenario_db) == []


def test_a_spike_is_rejected_and_the_next_reading_is_judged_against_the_last_good_one(
    scenario_db, deliver
) -> None:
    deliver([("T-G1", 0, 1.0), ("T-G1", 1, 1.2)])
    run = deliver([("T-G1", 2, 9.5), ("T-G1", 3, 2.4)])  # +8.3 m in an hour, then credible
    assert run.rejected == 1
    (reason,) = _rejects(scenario_db, run.run_id)
    assert "changes by 8.3 from 1.2" in reason and "more than 3 per hour" in reason
    assert _stored(scenario_db) == [1.0, 1.2, 2.4]
    warning = current_warning(scenario_db)
    assert (warning["level"], warning["water_level_m"]) == (1, 2.4)
    assert warning["peak_water_level_m"] == 2.4  # the spike is not the episode's peak


def test_a_stuck_sensor_is_rejected_after_twelve_hours(scenario_db, deliver) -> None:
    run = deliver([("T-G1", h, 2.5) for h in range(14)])
    # hours 0..11 are credible (the value may hold for a while), 12 and 13 are stuck
    assert (run.counts.added, run.rejected) == (12, 2)
    assert all("stuck sensor" in r for r in _rejects(scenario_db, run.run_id))


def test_an_unknown_gauge_is_rejected_not_stored(scenario_db, deliver) -> None:
    run = deliver([("T-NOPE", 0, 1.0), ("T-G1", 0, 1.0)])
    (reason,) = _rejects(scenario_db, run.run_id)
    assert "unknown station 'T-NOPE'" in reason and "hazard.gauges_current" in reason
    assert (
        scenario_db.execute(
            "SELECT count(*) FROM hazard.gauge_readings WHERE gauge_code = 'T-NOPE'"
        ).fetchone()[0]
        == 0
    )


def test_a_feed_repeating_its_last_line_loses_nothing(scenario_db, deliver) -> None:
    """The clearing reading of the issue's run: the file repeats its last line, twice, and the
    warning still clears."""
    deliver([("T-G1", 0, 2.5), ("T-G1", 1, 3.2)])
    assert current_warning(scenario_db)["level"] == 2
    run = deliver([("T-G1", 2, 2.2), ("T-G1", 3, 1.5), ("T-G1", 3, 1.5), ("T-G1", 3, 1.5)])
    assert (run.rejected, run.counts.added) == (0, 2)
    assert current_warning(scenario_db) is None
    assert [e[0] for e in warning_events(scenario_db)] == ["raised", "cleared"]


def test_conflicting_values_for_one_instant_are_still_rejected(scenario_db, deliver) -> None:
    run = deliver([("T-G1", 0, 1.5), ("T-G1", 0, 1.6)])
    (reason,) = _rejects(scenario_db, run.run_id)
    assert "conflicting duplicate" in reason


def test_alarm_since_is_the_start_of_the_episode(scenario_db, deliver) -> None:
    deliver([("T-G1", 0, 1.0), ("T-G1", 1, 2.2), ("T-G1", 2, 3.1)])
    raised = current_warning(scenario_db)
    assert raised["alarm_since"] == T0 + timedelta(hours=1)
    deliver([("T-G1", 1.5, 1.9)])  # late, below alarm I, inside the episode
    deliver([("T-G1", 3, 4.1)])
    warning = current_warning(scenario_db)
    assert warning["id"] == raised["id"] and warning["level"] == 3
    assert warning["alarm_since"] == T0 + timedelta(hours=1)
    assert warning["level_since"] == T0 + timedelta(hours=3)
    history = scenario_db.execute(
        "SELECT DISTINCT alarm_since FROM hazard.warnings WHERE natural_key = 'T-G1'"
    ).fetchall()
    assert history == [(T0 + timedelta(hours=1),)]
