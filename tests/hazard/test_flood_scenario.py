"""The scripted flood scenario of issue 5 ("how it will be checked"), read back over HTTP.

Gauge T-G1 of the hand-made scenario (tests/hazard/test_warnings.py: alarm levels 2, 3, 4 m,
nested 10/50/100-year zones and known buildings, parcels, lamps, cameras and pipes) rises
through levels I → II → III and falls below I, one delivery of the incremental readings feed
(the real ETL job) per step. After every step the test server is asked, over HTTP:

- ``/collections/warnings/items``: exactly one warning while above alarm I, none after;
  exposure equal to the hand-checked table and to an independent PostGIS query;
- ``/collections/warning_history/items``: raised, escalated ×2, de-escalated ×2, cleared;
- ``/collections/gauges/locations/T-G1`` (EDR): the whole series, in time order;
- ``/collections/warnings/changes?since=<run>``: added, changed, removed, run by run;
- ``/processes/exposure/execution``: the gauge at a hypothetical level exposes what a real
  warning at that level does.

Then a late reading above alarm III, older than the latest, raises nothing.
"""

from __future__ import annotations

from datetime import UTC, timedelta

import httpx
import pytest

from tests.support.flood_scenario import EXPECTED, T0, independent_exposure

GAUGE = "T-G1"
# (hours after T0, water level, level reached): rising through I, II, III, then falling
STEPS = [
    ([(0, 1.0), (1, 1.6)], 0),
    ([(2, 2.3)], 1),
    ([(3, 3.2)], 2),
    ([(4, 3.9), (5, 4.4)], 3),
    ([(6, 3.6)], 2),
    ([(7, 2.1)], 1),
    ([(8, 1.4)], 0),
]
COUNTS = ("buildings", "residential_floors", "parcels", "street_lamps", "cameras")


def _warnings(api: httpx.Client) -> list[dict]:
    body = api.get("/collections/warnings/items", params={"f": "json", "gauge_code": GAUGE}).json()
    assert body["numberReturned"] == len(body["features"])
    return body["features"]


def _feed(api: httpx.Client, since: int) -> dict[str, str]:
    response = api.get("/collections/warnings/changes", params={"since": since, "limit": 10_000})
    assert response.status_code == 200, response.text
    return {
        f["properties"]["gauge_code"]: f["properties"]["change"]
        for f in response.json()["features"]
        if f["properties"]["gauge_code"] == GAUGE
    }


def check_exposure(properties: dict, level: int, scenario_db) -> None:
    expected = EXPECTED[level]
    for key in ("zone_codes", "buildings", "parcels", "parcels_by_group", "residents_estimate",
                "critical_facilities", "street_lamps", "cameras"):  # fmt: skip
        assert properties[key] == expected[key], key
    assert properties["water_pipes_m"] == pytest.approx(expected["water_pipes_m"], abs=0.01)
    independent = independent_exposure(scenario_db, GAUGE, expected["return_period_years"])
    for key in COUNTS:
        if key in properties:
            assert properties[key] == independent[key], key
    assert properties["water_pipes_m"] == pytest.approx(independent["water_pipes_m"], abs=0.05)


def test_a_flood_rises_through_the_levels_and_falls(api, scenario_db, deliver) -> None:
    runs: list[int] = []
    warning_id = None
    previous = 0
    for readings, level in STEPS:
        result = deliver([(GAUGE, hours, value) for hours, value in readings])
        if runs:  # the change feed since the previous load says what this one did
            change = {(0, 0): None, (0, 1): "added", (1, 0): "removed"}.get(
                (min(previous, 1), min(level, 1)), "changed"
            )
            assert _feed(api, runs[-1]) == ({GAUGE: change} if change else {})
        runs.append(result.run_id)
        previous = level
        features = _warnings(api)
        if level == 0:
            assert features == []
            continue
        (feature,) = features  # exactly one warning while above alarm I
        properties = feature["properties"]
        assert (properties["level"], properties["water_level_m"]) == (level, readings[-1][1])
        warning_id = warning_id or feature["id"]
        assert feature["id"] == warning_id  # one episode, one warning
        if level in EXPECTED:
            check_exposure(properties, level, scenario_db)
            # the response's properties lack residential_floors: compare it in the warehouse
            stored = scenario_db.execute(
                "SELECT residential_floors FROM hazard.warnings_current WHERE natural_key = %s",
                (GAUGE,),
            ).fetchone()[0]
            assert stored == EXPECTED[level]["residential_floors"]

    # the history keeps every event, in order, each with the run that caused it
    history = api.get(
        "/collections/warning_history/items",
        params={"f": "json", "gauge_code": GAUGE, "sortby": "valid_from", "limit": 100},
    ).json()["features"]
    events = [
        (h["properties"]["event"], h["properties"]["level_from"], h["properties"]["level_to"])
        for h in history
    ]
    assert events == [
        ("raised", 0, 1),
        ("escalated", 1, 2),
        ("escalated", 2, 3),
        ("de-escalated", 3, 2),
        ("de-escalated", 2, 1),
        ("cleared", 1, 0),
    ]
    assert {h["properties"]["warning_id"] for h in history} == {warning_id}

    # over longer windows: raised and cleared inside it is no change; since any load during
    # the flood, the warning is removed; since the clear, nothing
    assert _feed(api, runs[0]) == {} and _feed(api, runs[-1]) == {}
    assert all(_feed(api, run) == {GAUGE: "removed"} for run in runs[1:-1])

    # EDR: the gauge's whole series, in time order
    series = api.get(f"/collections/gauges/locations/{GAUGE}", params={"f": "json"}).json()
    (coverage,) = series["coverages"]
    delivered = [(hours, value) for readings, _ in STEPS for hours, value in readings]
    expected_times = [
        (T0 + timedelta(hours=h)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for h, _ in delivered
    ]
    assert coverage["domain"]["axes"]["t"]["values"] == expected_times
    assert coverage["ranges"]["water_level_m"]["values"] == [v for _, v in delivered]


def test_the_feed_while_the_flood_is_on(api, scenario_db, deliver) -> None:
    raised = deliver([(GAUGE, 0, 2.4)])
    assert _feed(api, raised.run_id) == {}
    up = deliver([(GAUGE, 1, 3.3)])
    assert _feed(api, raised.run_id) == {GAUGE: "changed"}
    assert _feed(api, up.run_id) == {}
    feature = api.get("/collections/warnings/changes", params={"since": raised.run_id}).json()[
        "features"
    ]
    (mine,) = [f for f in feature if f["properties"]["gauge_code"] == GAUGE]
    assert mine["properties"]["run_id"] == up.run_id and mine["properties"]["level"] == 2


def test_a_late_reading_raises_nothing(api, scenario_db, deliver) -> None:
    before = deliver([(GAUGE, 0, 1.0), (GAUGE, 4, 1.2)])
    # above III, but older than the latest reading (and credible: 3.1 m in two hours; a jump
    # of 3.6 m in one hour would be rejected as implausible, tests/hazard/test_plausibility.py)
    late = deliver([(GAUGE, 2, 4.1)])
    assert late.counts.added == 1
    assert _warnings(api) == []
    assert _feed(api, before.run_id) == {}
    history = api.get(
        "/collections/warning_history/items", params={"f": "json", "gauge_code": GAUGE}
    ).json()
    assert history["features"] == []
    # the reading is stored all the same, in its place in the series
    series = api.get(f"/collections/gauges/locations/{GAUGE}", params={"f": "json"}).json()[
        "coverages"
    ][0]
    assert series["ranges"]["water_level_m"]["values"] == [1.0, 4.1, 1.2]


@pytest.mark.parametrize("level", [2, 3])
def test_the_exposure_process_agrees_with_a_real_warning(api, scenario_db, level) -> None:
    water = {2: 3.2, 3: 4.4}[level]
    response = api.post(
        "/processes/exposure/execution", json={"inputs": {"gauge": GAUGE, "water_level_m": water}}
    )
    assert response.status_code == 200, response.text
    properties = response.json()["properties"]
    assert properties["level"] == level
    check_exposure(properties, level, scenario_db)
    assert properties["residential_floors"] == EXPECTED[level]["residential_floors"]


def test_the_command_line_gives_the_same_exposure(scenario_db) -> None:
    import json

    from typer.testing import CliRunner

    from sdi.hazard.cli import app

    result = CliRunner().invoke(app, ["exposure", "--gauge", GAUGE, "--water-level", "3.2"])
    assert result.exit_code == 0, result.output
    properties = json.loads(result.stdout)
    assert properties["level_label"] == "II"
    check_exposure(properties, 2, scenario_db)
    unknown = CliRunner().invoke(app, ["exposure", "--gauge", "NO-SUCH", "--water-level", "1"])
    assert unknown.exit_code == 2 and "unknown gauge 'NO-SUCH'" in unknown.output
