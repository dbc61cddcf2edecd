"""The derived layers over the sample warehouse: each compared with an independent query, the
after-load hooks, the published collections, the command and the rules file's errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from sdi.errors import ConfigError
from sdi.etl.hooks import registered
from sdi.planning.model import LAYER_INPUTS, STALLED_AFTER_MONTHS, load_compatibility
from tests.conftest import run_sdi


def ids(db: psycopg.Connection, query: str, *params: object) -> set[int]:
    return {r[0] for r in db.execute(query, params)}


def test_the_load_refreshed_every_derived_table(db, loaded) -> None:
    counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in LAYER_INPUTS}
    assert all(n > 0 for n in counts.values()), counts
    communes = db.execute("SELECT count(*) FROM admin.communes_current").fetchone()[0]
    assert counts["planning.commune_indicators"] == counts["ops.commune_summary"] == communes
    # Each table's last refresh by a load came from a load of one of its inputs, with that
    # load's run (incident writes in other tests refresh the summary too, with no run).
    for table, inputs in LAYER_INPUTS.items():
        trigger, run_id = db.execute(
            "SELECT trigger, run_id FROM planning.refreshes WHERE layer = %s "
            "AND trigger <> 'incidents' ORDER BY refresh_id DESC LIMIT 1",
            (table,),
        ).fetchone()
        assert trigger in inputs, (table, trigger)
        job = db.execute("SELECT job FROM etl.runs WHERE run_id = %s", (run_id,)).fetchone()[0]
        assert job in {r.job for r in loaded.values()}, (table, job)


def test_conflicts_match_the_rules_applied_in_python(db, loaded) -> None:
    compat = load_compatibility()
    expected = set()
    for parcel_id, codes, planned in db.execute(
        "SELECT DISTINCT ON (p.id) p.id, p.land_use_codes, z.planned_land_use "
        "FROM land.parcels_current p JOIN land.zoning_current z "
        "ON ST_Contains(z.geom, ST_PointOnSurface(p.geom)) ORDER BY p.id, z.id"
    ):
        if compat.conflicting(planned, codes):
            expected.add(parcel_id)
    assert expected  # the samples have conflicts
    assert ids(db, "SELECT id FROM planning.land_use_conflicts") == expected


def test_permits_and_buildings_match_an_independent_query(db, loaded) -> None:
    # Written differently from the refresh: a 5 m geodesic buffer around the building.
    matched = (
        "SELECT 1 FROM construction.permits_current p "
        "WHERE ST_Intersects(ST_Buffer(b.geom::geography, 5)::geometry, p.geom) "
        "AND (b.year_built IS NULL OR p.issued_on IS NULL "
        "     OR extract(year FROM p.issued_on) <= b.year_built + 1)"
    )
    without = ids(
        db, f"SELECT b.id FROM construction.buildings_current b WHERE NOT EXISTS ({matched})"
    )
    assert ids(db, "SELECT id FROM planning.buildings_without_permit") == without
    before = ids(db, "SELECT id FROM construction.buildings_current WHERE year_built < 1995")
    assert ids(
        db,
        "SELECT id FROM planning.buildings_without_permit WHERE category = 'built_before_register'",
    ) == (without & before)

    stalled = ids(
        db,
        "SELECT p.id FROM construction.permits_current p "
        "WHERE p.issued_on + make_interval(months => %s) <= current_date "
        "AND NOT EXISTS (SELECT 1 FROM construction.buildings_current b "
        "  WHERE ST_Intersects(ST_Buffer(p.geom::geography, 5)::geometry, b.geom))",
        STALLED_AFTER_MONTHS,
    )
    assert stalled  # the samples' permits on empty parcels
    assert ids(db, "SELECT id FROM planning.stalled_permits") == stalled


def test_hazard_exposure_matches_an_independent_query(db, loaded) -> None:
    for source, target in (
        ("land.parcels_current", "planning.hazard_parcels"),
        ("construction.buildings_current", "planning.hazard_buildings"),
    ):
        flooded = dict(
            db.execute(
                f"SELECT f.id, min(z.return_period_years) FROM {source} f "
                "JOIN hazard.flood_zones_current z ON ST_Intersects(z.geom, f.geom) GROUP BY f.id"
            ).fetchall()
        )
        assert flooded, source
        derived = dict(
            db.execute(
                f"SELECT id, flood_return_period_years FROM {target} WHERE 'flood' = ANY (hazards)"
            ).fetchall()
        )
        assert derived == flooded, target


def test_indicators_and_summary_add_up(db, loaded) -> None:
    totals = db.execute(
        "SELECT sum(parcels), sum(buildings), sum(building_footprint_m2) "
        "FROM planning.commune_indicators"
    ).fetchone()
    raw = db.execute(
        "SELECT (SELECT count(*) FROM land.parcels_current p JOIN admin.communes_current c "
        "        USING (commune_code, admin_vintage)),"
        "       (SELECT count(*) FROM construction.buildings_current b "
        "        JOIN admin.communes_current c USING (commune_code, admin_vintage)),"
        "       (SELECT sum(footprint_m2) FROM construction.buildings_current b "
        "        JOIN admin.communes_current c USING (commune_code, admin_vintage))"
    ).fetchone()
    assert totals[:2] == raw[:2] and totals[2] == pytest.approx(raw[2])
    mixes = [r[0] for r in db.execute("SELECT land_use_mix FROM planning.commune_indicators")]
    assert all(m is None or 0 <= m <= 1 for m in mixes) and any(m for m in mixes)

    per_status = dict(
        db.execute(
            "SELECT commune_code || '/' || status, count(*) FROM utility.street_lamps_current "
            "WHERE status IN ('on', 'fault') GROUP BY 1"
        ).fetchall()
    )
    summary = {}
    for code, on, fault in db.execute(
        "SELECT commune_code, lamps_on, lamps_fault FROM ops.commune_summary"
    ):
        summary.update({f"{code}/on": on, f"{code}/fault": fault})
    assert {k: v for k, v in summary.items() if v} == per_status
    for column, table in (
        ("lamps", "street_lamps"),
        ("cameras", "cameras"),
        ("wifi_hotspots", "wifi_hotspots"),
        ("sensors", "env_sensors"),
    ):
        assert (
            db.execute(f"SELECT sum({column}) FROM ops.commune_summary").fetchone()[0]
            == (db.execute(f"SELECT count(*) FROM utility.{table}_current").fetchone()[0])
        ), column

    # The latest readings: every sensor of the sample reports; compare with DISTINCT ON.
    latest = {
        (sensor, parameter): value
        for sensor, parameter, value in db.execute(
            "SELECT DISTINCT ON (sensor_code, parameter) sensor_code, parameter, value "
            "FROM utility.env_readings ORDER BY sensor_code, parameter, observed_at DESC"
        )
    }
    assert latest  # the sample delivery utility/env_readings.csv
    shown = {}
    for water, air in db.execute("SELECT water_quality, air_quality FROM ops.commune_summary"):
        for sensor, reading in {**water, **air}.items():
            shown.update({(sensor, p): v for p, v in reading["values"].items()})
    assert shown == latest


def test_a_load_refreshes_only_what_depends_on_it(db, loaded, settings, tmp_path) -> None:
    from sdi.etl.runner import run_job
    from sdi.etl.spec import discover_jobs, load_job

    path = discover_jobs(settings)["utility_wifi_hotspots"]
    delivered = settings.source_dir / "utility" / "wifi_hotspots.csv"
    lines = delivered.read_text(encoding="utf-8").splitlines(keepends=True)
    header = lines[0].rstrip().split(",")
    first = lines[1].rstrip("\r\n").split(",")  # no quoted commas in the first row
    commune, status = first[header.index("commune_code")], first[header.index("status")]
    first[header.index("status")] = "offline" if status == "active" else "active"
    changed = tmp_path / "utility" / "wifi_hotspots.csv"
    changed.parent.mkdir()
    changed.write_text("".join([lines[0], ",".join(first) + "\n", *lines[2:]]), "utf-8")

    def offline() -> int:
        return db.execute(
            "SELECT wifi_offline FROM ops.commune_summary WHERE commune_code = %s", (commune,)
        ).fetchone()[0]

    def load(source_dir: Path, **options: bool) -> set[str]:
        local = settings.model_copy(update={"source_dir": source_dir})
        result = run_job(load_job(path, local), settings.database_url, settings=local, **options)
        assert result.status == "succeeded", result.message
        return {
            r[0]
            for r in db.execute(
                "SELECT layer FROM planning.refreshes WHERE run_id = %s", (result.run_id,)
            )
        }

    before = offline()
    assert load(tmp_path) == {"ops.commune_summary"}  # not the planning layers
    assert offline() == before + (1 if status == "active" else -1)
    assert load(settings.source_dir) == {"ops.commune_summary"}  # the original again
    assert offline() == before
    assert load(settings.source_dir, force=True) == set()  # nothing changed: nothing derived
    hooks = {h.name for h in registered() if "utility.wifi_hotspots" in h.inputs}
    assert hooks == {"ops.commune_summary"}  # not the flood warnings either


def test_the_collections_are_published_with_access_control(api: httpx.Client, settings) -> None:
    page = api.get("/collections/planning_land_use_conflicts/items", params={"limit": 3})
    assert page.status_code == 200, page.text
    features = page.json()["features"]
    assert len(features) == 3 and all(f["properties"]["conflicting_codes"] for f in features)
    parcel = api.get(f"/collections/parcels/items/{features[0]['id']}")
    assert parcel.status_code == 200  # the item id is the parcel's
    assert "owner_name" not in parcel.text

    summary = api.get("/collections/ops_commune_summary/items", params={"limit": 100}).json()
    assert sum(f["properties"]["lamps"] for f in summary["features"]) > 0

    internal = "/collections/planning_buildings_without_permit/items"
    assert api.get(internal).status_code == 404
    from sdi.keys import create_key

    with psycopg.connect(settings.database_url) as conn:
        _, construction = create_key(conn, "construction", "planning tests")
    seen = api.get(internal, headers={"X-API-Key": construction}, params={"limit": 2})
    assert seen.status_code == 200 and len(seen.json()["features"]) == 2


def test_refresh_command(db, loaded) -> None:
    done = run_sdi("planning", "refresh", "--layer", "planning.stalled_permits")
    assert done.returncode == 0, done.stderr
    assert "planning.stalled_permits" in done.stdout
    run = db.execute(
        "SELECT status, message FROM etl.runs WHERE job = 'planning_refresh' "
        "ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    assert run[0] == "succeeded" and "stalled_permits" in run[1]

    status = run_sdi("planning", "status")
    assert (
        status.returncode == 0 and "manual" in status.stdout and "ops.commune_summ" in status.stdout
    )

    wrong = run_sdi("planning", "refresh", "--layer", "planning.nope")
    assert wrong.returncode == 2
    assert "unknown layer planning.nope" in wrong.stderr and "Traceback" not in wrong.stderr


def test_compatibility_errors_name_file_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "zoning_compatibility.yml"
    path.write_text(
        "everywhere: [DGT]\n"
        "zones:\n"
        "  ODT:\n"
        "    permitted: [ODT, BHK]\n"
        "  TMD:\n"
        "    permitted: [TMD, XYZ]\n"
        "    labl: typo\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as error:
        load_compatibility(path)
    message = str(error.value)
    assert f"{path}:4: zones.ODT.permitted: BHK: superseded by HNK" in message
    assert f"{path}:6: zones.TMD.permitted: XYZ: not a land-use code" in message
    assert "zones.TMD: unknown key labl" in message
