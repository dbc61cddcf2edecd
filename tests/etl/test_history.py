"""History, as-of queries, slices, and several departments feeding one table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyogrio
import pytest

from sdi.etl.runner import run_job
from sdi.etl.spec import discover_jobs, load_job


def _job(settings, name: str, source_dir: Path | None = None):
    job_settings = settings.model_copy(update={"source_dir": source_dir or settings.source_dir})
    return load_job(discover_jobs(settings)[name], job_settings), job_settings


def _copy_delivery(settings, tmp_path: Path, relative: str) -> Path:
    target = tmp_path / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(settings.source_dir / relative, target)
    return target


def test_changed_delivery_versions_retires_and_stays_queryable_as_of_each_run(
    loaded, settings, tmp_path, db
) -> None:
    """A new delivery of gauges: one changed, one gone. The old state stays queryable."""
    path = _copy_delivery(settings, tmp_path, "hazard/gauge_stations.csv")
    lines = path.read_text(encoding="utf-8").splitlines()
    header, first, second, *rest = lines
    changed_key, gone_key = first.split(",")[0], second.split(",")[0]
    changed = first.replace(first.split(",")[1], "Trạm đổi tên", 1)
    path.write_text("\n".join([header, changed, *rest]) + "\n", encoding="utf-8")

    before_run = db.execute(
        "SELECT max(run_id) FROM etl.runs WHERE job = 'hazard_gauges' AND status = 'succeeded'"
    ).fetchone()[0]
    job, job_settings = _job(settings, "hazard_gauges", tmp_path)
    result = run_job(job, settings.database_url, settings=job_settings)
    assert (result.counts.added, result.counts.updated, result.counts.retired) == (0, 1, 1)

    now = {
        k: n
        for k, n in db.execute(
            "SELECT natural_key, name FROM hazard.gauges_current WHERE natural_key = ANY(%s)",
            ([changed_key, gone_key],),
        )
    }
    assert now == {changed_key: "Trạm đổi tên"}
    then = {
        k: n
        for k, n in db.execute(
            "SELECT natural_key, name FROM hazard.gauges_as_of(etl.run_time(%s)) "
            "WHERE natural_key = ANY(%s)",
            (before_run, [changed_key, gone_key]),
        )
    }
    assert set(then) == {changed_key, gone_key}
    assert then[changed_key] != "Trạm đổi tên"
    # one feature, two versions, one stable id
    versions = db.execute(
        "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE valid_to IS NULL) "
        "FROM hazard.gauges WHERE natural_key = %s",
        (changed_key,),
    ).fetchone()
    assert versions == (2, 1, 1)
    # lineage: the new version records the run that wrote it, and the run its source file
    source = db.execute(
        "SELECT rs.path, rs.sha256 FROM hazard.gauges_current g "
        "JOIN etl.run_sources rs USING (run_id) WHERE g.natural_key = %s",
        (changed_key,),
    ).fetchone()
    assert source[0] == str(path) and len(source[1]) == 64

    # the original delivery brings the original state back
    job, job_settings = _job(settings, "hazard_gauges")
    restored = run_job(job, settings.database_url, settings=job_settings, force=True)
    assert (restored.counts.added, restored.counts.updated) == (1, 1)


def test_replace_slice_retires_only_within_the_delivered_slice(loaded, settings, tmp_path, db):
    """Hạ Long alone delivers its wifi hotspots, minus one: only that one is retired."""
    path = _copy_delivery(settings, tmp_path, "utility/wifi_hotspots.csv")
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    ha_long = [r for r in rows if r.startswith("HL-")]
    assert len(ha_long) > 10
    path.write_text("\n".join([header, *ha_long[1:]]) + "\n", encoding="utf-8")
    spec = tmp_path / "utility_wifi_hotspots_ha_long.yml"
    spec.write_text(
        discover_jobs(settings)["utility_wifi_hotspots"]
        .read_text(encoding="utf-8")
        .replace(
            "  table: utility.wifi_hotspots\n",
            "  table: utility.wifi_hotspots\n  mode: replace_slice\n  slice: commune_code\n",
        )
    )
    job = load_job(spec, settings)
    total_before = db.execute("SELECT count(*) FROM utility.wifi_hotspots_current").fetchone()[0]
    result = run_job(
        job, settings.database_url, settings=settings.model_copy(update={"source_dir": tmp_path})
    )
    assert result.counts.retired == 1
    total_after = db.execute("SELECT count(*) FROM utility.wifi_hotspots_current").fetchone()[0]
    assert total_after == total_before - 1
    # put it back for the other tests
    job, job_settings = _job(settings, "utility_wifi_hotspots")
    assert run_job(job, settings.database_url, settings=job_settings, force=True).counts.added == 1


def test_two_departments_feed_buildings_by_the_merge_rule_and_losing_values_are_kept(
    loaded, settings, db
) -> None:
    survey = pyogrio.read_dataframe(
        settings.source_dir / "construction/buildings_survey.gpkg", layer="nha_khao_sat"
    )
    assert len(survey) > 100
    rows = db.execute(
        """
        SELECT b.natural_key, b.height_m, b.floors,
               (s.attributes->>'height_m')::float, (s.attributes->>'floors')::int,
               (c.attributes->>'height_m')::float, (c.attributes->>'floors')::int,
               ST_Equals(b.geom, ST_Multi(s.geom)), b.use_type
        FROM construction.buildings_current b
        JOIN etl.contributions s ON s.target = 'construction.buildings' AND s.source = 'survey'
             AND s.valid_to IS NULL AND s.natural_key = b.natural_key
        JOIN etl.contributions c ON c.target = 'construction.buildings'
             AND c.source = 'construction' AND c.valid_to IS NULL AND c.natural_key = b.natural_key
        """
    ).fetchall()
    assert len(rows) == len(survey)
    disagreeing_floors = 0
    for key, height, floors, s_height, s_floors, _, c_floors, survey_geom, use in rows:
        assert height == s_height, key  # the survey wins for height …
        assert survey_geom, key  # … and geometry
        assert floors == c_floors, key  # the construction department wins for floors
        assert use is not None  # only the construction department knows the use
        if s_floors != c_floors:
            disagreeing_floors += 1  # the survey's value is not lost: it is in contributions
    assert disagreeing_floors > 0
    # buildings the survey did not measure keep the construction department's values
    unsurveyed = db.execute(
        """
        SELECT count(*) FROM construction.buildings_current b
        JOIN etl.contributions c ON c.target = 'construction.buildings'
             AND c.source = 'construction' AND c.valid_to IS NULL AND c.natural_key = b.natural_key
        WHERE b.height_m IS DISTINCT FROM (c.attributes->>'height_m')::float
          AND NOT EXISTS (SELECT 1 FROM etl.contributions s WHERE s.source = 'survey'
                          AND s.valid_to IS NULL AND s.natural_key = b.natural_key)
        """
    ).fetchone()[0]
    assert unsurveyed == 0


@pytest.mark.parametrize("name", ["construction_buildings", "construction_buildings_survey"])
def test_rerunning_a_contributing_source_changes_nothing(loaded, settings, name) -> None:
    job, job_settings = _job(settings, name)
    result = run_job(job, settings.database_url, settings=job_settings, force=True)
    assert result.changes == 0
