"""``sdi hazard risk-recompute`` and ``sdi hazard risk``, as an operator runs them."""

from __future__ import annotations

import psycopg

from tests.conftest import run_sdi


def test_the_manual_recompute_is_a_recorded_run_and_the_report_lists_levels(
    loaded: dict, migrated: str
) -> None:
    done = run_sdi("hazard", "risk-recompute")
    assert done.returncode == 0, done.stderr
    assert "disaster risk:" in done.stderr
    with psycopg.connect(migrated) as conn:
        status, message = conn.execute(
            "SELECT status, message FROM etl.runs WHERE job = 'hazard_risk_recompute' "
            "ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        active = conn.execute("SELECT count(*) FROM hazard.risk_levels_current").fetchone()[0]
    assert status == "succeeded" and message.startswith("disaster risk:")
    assert f"disaster risk: {active} active" in message
    report = run_sdi("hazard", "risk")
    assert report.returncode == 0, report.stderr
    assert "hazard" in report.stdout and "combined level" in report.stdout
    with psycopg.connect(migrated) as conn:
        # the manual recompute counted every commune and zone once, under the current stamp
        counted, stamps = conn.execute(
            "SELECT count(*), count(DISTINCT stamp) FROM hazard.area_exposure"
        ).fetchone()
        communes = conn.execute("SELECT count(*) FROM admin.communes_current").fetchone()[0]
        assert counted >= communes and stamps == 1
        # leave none kept: a later test's load of an exposed layer would count them all again
        conn.execute("DELETE FROM hazard.area_exposure")
