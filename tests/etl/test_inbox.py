"""Deliveries (issue 12, item 3): the inbox, ``sdi etl run --changed``, one broken spec among
good ones, and the ``etl-run`` process a department delivers through."""

from __future__ import annotations

import base64
import io
import os
import time
import zipfile
from pathlib import Path

import psycopg
import pytest

from sdi.etl.inbox import changed_jobs, department_of, link_samples
from sdi.etl.spec import load_job
from tests.support import deliveries as d
from tests.support.environment import sdi_settings


@pytest.fixture(scope="module")
def warehouse(migrated: str, settings):
    with d.warehouse(migrated, settings, "sdi_test_inbox") as url:
        yield url


def _env(url: str, folder: Path) -> dict[str, str]:
    return {
        "SDI_DATABASE_URL": url,
        "SDI_JOBS_DIR": str(folder / "jobs"),
        "SDI_SOURCE_DIR": str(folder / "inbox"),
        "SDI_STATE_DIR": str(folder / "state"),
        "SDI_SAMPLES_DIR": str(folder / "samples"),
    }


def _lamp_jobs(folder: Path, n: int) -> None:
    """``n`` jobs, one lamp file each (a table of their own is not needed: they are
    ``append``-free history jobs on one table, keyed apart)."""
    (folder / "jobs").mkdir(exist_ok=True)
    for i in range(n):
        d.write(d.lamps(3, prefix=f"J{i:02d}-"), folder / "inbox" / "utility" / f"lamps_{i}.gpkg")
        (folder / "jobs" / f"lamps_{i}.yml").write_text(
            d.lamp_spec(f"utility/lamps_{i}.gpkg").replace(
                "target:\n  table: utility.street_lamps",
                "target:\n  table: utility.street_lamps\n  mode: replace_slice\n  slice: lamp_code",
            )
        )


def test_department_is_the_inbox_folder(settings) -> None:
    job = load_job(settings.jobs_dir / "land_parcels.yml", settings)
    assert department_of(job) == "land"


def test_link_samples_fills_missing_department_folders(tmp_path: Path) -> None:
    from sdi.settings import Settings

    (tmp_path / "samples" / "land").mkdir(parents=True)
    (tmp_path / "samples" / "utility").mkdir()
    (tmp_path / "samples" / "land" / "parcels_x.shp").write_bytes(b"x")
    (tmp_path / "inbox" / "utility").mkdir(parents=True)  # a real delivery folder stays
    local = Settings(
        _env_file=None, source_dir=tmp_path / "inbox", samples_dir=tmp_path / "samples"
    )
    assert link_samples(local) == ["land"]
    assert (tmp_path / "inbox" / "land" / "parcels_x.shp").read_bytes() == b"x"
    assert not (tmp_path / "inbox" / "utility").is_symlink()
    assert link_samples(local) == []


def test_changed_runs_only_what_changed(warehouse: str, tmp_path: Path) -> None:
    _lamp_jobs(tmp_path, 3)
    env = _env(warehouse, tmp_path)
    (tmp_path / "jobs" / "nothing_yet.yml").write_text(d.lamp_spec("utility/not_delivered.gpkg"))

    first = d.sdi("etl", "run", "--changed", **env)
    assert first.exit_code == 0, first.output
    assert "never run" in first.output and "nothing delivered" in first.output

    with sdi_settings(**env) as local, psycopg.connect(warehouse) as conn:
        pending = {p.job: p for p in changed_jobs(conn, local)}
        assert not any(p.run for p in pending.values()), pending
        # touched, same bytes: the hash decides it is unchanged
        path = tmp_path / "inbox" / "utility" / "lamps_1.gpkg"
        os.utime(path, (time.time() + 5, time.time() + 5))
        assert not {p.job for p in changed_jobs(conn, local) if p.run}
        # a new delivery of job 2, and an edited spec of job 0
        path.unlink()
        d.write(d.lamps(4, prefix="J01-"), path)
        spec = tmp_path / "jobs" / "lamps_0.yml"
        spec.write_text(spec.read_text() + "# reviewed\n")
        assert {p.job for p in changed_jobs(conn, local) if p.run} == {"lamps_0", "lamps_1"}

    second = d.sdi("etl", "run", "--changed", **env)
    assert second.exit_code == 0, second.output
    with psycopg.connect(warehouse) as conn:
        counted = conn.execute(
            "SELECT job, count(*) FROM etl.runs WHERE job LIKE 'lamps_%%' GROUP BY job ORDER BY 1"
        ).fetchall()
    assert counted == [("lamps_0", 2), ("lamps_1", 2), ("lamps_2", 1)]


def test_a_broken_spec_does_not_stop_the_others(warehouse: str, tmp_path: Path) -> None:
    _lamp_jobs(tmp_path, 2)
    (tmp_path / "jobs" / "broken.yml").write_text("title: x\nsource:\n  path: a\n   srid: 1\n")
    result = d.sdi("etl", "run", "--all", **_env(warehouse, tmp_path))
    assert result.exit_code == 2, result.output  # the broken spec's (configuration) exit code
    assert "broken.yml" in result.output and "1 job(s) failed: broken" in result.output
    assert "Traceback" not in result.output
    with psycopg.connect(warehouse) as conn:
        loaded = conn.execute(
            "SELECT count(*) FROM utility.street_lamps WHERE valid_to IS NULL "
            "AND natural_key LIKE 'J0%%'"
        ).fetchone()[0]
    assert loaded >= 6


# -- the etl-run process ------------------------------------------------------------------------


def _zip(files: dict[str, bytes]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return base64.b64encode(buffer.getvalue()).decode()


def test_etl_run_delivers_an_upload_and_answers_the_report(warehouse: str, tmp_path: Path) -> None:
    from sdi.api.etl_process import DeliveryError, execute_delivery

    _lamp_jobs(tmp_path, 1)
    shapefile = d.write(d.lamps(5, prefix="UP-"), tmp_path / "upload" / "lamps_0.shp")
    parts = {p.name: p.read_bytes() for p in shapefile.parent.iterdir()}
    with sdi_settings(**_env(warehouse, tmp_path)) as local:
        inputs = {"job": "lamps_0", "file": {"filename": "lamps.zip", "value": _zip(parts)}}
        with pytest.raises(DeliveryError, match="may not deliver job 'lamps_0'"):
            execute_delivery({**inputs, "_caller": {"department": "land"}}, local)
        with pytest.raises(DeliveryError, match="needs an API key"):
            execute_delivery(inputs, local)
        # the job reads utility/lamps_0.gpkg: a shapefile does not match its source.path
        with pytest.raises(DeliveryError, match=r"no file of the upload matches"):
            execute_delivery({**inputs, "_caller": {"department": "utility"}}, local)

        gpkg = d.write(d.lamps(5, prefix="UP-"), tmp_path / "upload" / "lamps_0.gpkg")
        upload = {"filename": "lamps_0.gpkg", "value": base64.b64encode(gpkg.read_bytes()).decode()}
        report = execute_delivery(
            {"job": "lamps_0", "file": upload, "_caller": {"department": "utility"}}, local
        )
        assert report["status"] == "succeeded", report["message"]
        assert report["counts"]["rows_read"] == 5
        assert report["evidence"]["crs"]  # the file's own CRS, checked
        assert report["rejects_csv"].startswith("source_path,row_number")
        assert "<svg" in report["report_html"]
        assert (tmp_path / "inbox" / "utility" / "lamps_0.gpkg").read_bytes() == gpkg.read_bytes()

        # a delivery the run refuses is a report too, with its reason
        bad = d.lamps(5, prefix="UP-")
        bad["lamp_id"] = "SAME"
        bad_path = d.write(bad, tmp_path / "upload2" / "lamps_0.gpkg")
        upload = {
            "filename": "lamps_0.gpkg",
            "value": base64.b64encode(bad_path.read_bytes()).decode(),
        }
        report = execute_delivery(
            {"job": "lamps_0", "file": upload, "_caller": {"department": "*"}}, local
        )
        assert report["status"] == "rejected" and "duplicate natural key" in report["message"]
        assert report["rejects_csv"].count("\n") == 5  # header + 4 duplicates

        with pytest.raises(DeliveryError, match="unsafe"):
            execute_delivery(
                {"job": "lamps_0", "file": {"filename": "../..", "value": "AA=="},
                 "_caller": {"department": "utility"}},
                local,
            )  # fmt: skip


def test_plausible_mistakes_delivered_through_etl_run(warehouse: str, tmp_path: Path) -> None:
    """What a department will get wrong, uploaded through etl-run: a file in a neighbouring
    VN-2000 zone, a truncated Shapefile and a commune name with a typo. Each answers a report
    (or an error) naming the file and the cause, nothing is loaded, no run stays running."""
    from sdi.api.etl_process import DeliveryError, execute_delivery

    (tmp_path / "jobs").mkdir()
    gazetteer = "  cabinet_id: {from: commune, gazetteer: commune_name}\n"
    specs = {
        "crs": d.lamp_spec("utility/crs.gpkg"),  # declares EPSG:5899
        "corrupt": d.lamp_spec("utility/corrupt.shp"),
        "typo": d.lamp_spec("utility/typo.gpkg", fields_extra=gazetteer),
    }
    for name, text in specs.items():
        (tmp_path / "jobs" / f"{name}.yml").write_text(text, encoding="utf-8")
    upload = tmp_path / "upload"
    # 1. the file's own CRS is the 105°45' zone (EPSG:5898), the spec says 107°45' (5899)
    d.write(d.lamps(5, prefix="CRS").set_crs(5898, allow_override=True), upload / "crs.gpkg")
    # 2. a Shapefile cut in half on its way
    shapefile = d.write(d.lamps(5, prefix="COR"), upload / "corrupt.shp")
    shapefile.write_bytes(shapefile.read_bytes()[: shapefile.stat().st_size // 2])
    # 3. "Hồng Gay" for "Hồng Gai"
    typo = d.lamps(5, prefix="GZT")
    typo["commune"] = "Phường Hồng Gay"
    d.write(typo, upload / "typo.gpkg")

    def file_input(*paths: Path) -> dict[str, str]:
        if len(paths) == 1:
            return {
                "filename": paths[0].name,
                "value": base64.b64encode(paths[0].read_bytes()).decode(),
            }
        return {"filename": "delivery.zip", "value": _zip({p.name: p.read_bytes() for p in paths})}

    cases = {
        "crs": (file_input(upload / "crs.gpkg"), ("crs.gpkg", "5898", "5899")),
        "corrupt": (
            file_input(*sorted(upload.glob("corrupt.*"))),
            ("corrupt.shp", "corrupt file"),
        ),
        "typo": (file_input(upload / "typo.gpkg"), ("typo.gpkg", "Hồng Gay", "Hồng Gai?")),
    }
    before = d.fingerprint(warehouse)
    with sdi_settings(**_env(warehouse, tmp_path)) as local:
        for job, (file, expected) in cases.items():
            inputs = {"job": job, "file": file, "_caller": {"department": "utility"}}
            try:
                report = execute_delivery(inputs, local)
            except DeliveryError as exc:  # refused before a run began: the process's error
                message = str(exc)
            else:
                assert report["status"] in ("failed", "rejected"), (job, report["message"])
                message = report["message"] + report["rejects_csv"]
            assert all(e in message for e in expected), (job, message)
            assert "Traceback" not in message
    assert d.fingerprint(warehouse) == before


def test_etl_run_over_http(api, settings, migrated) -> None:
    """Through the served API: anonymous 401, another department 403, the owner's async job
    answers the report (a dry run of the sample file itself: nothing changes); the job and its
    result are the department's — another key of it sees them, another department's key and
    anonymous callers get the answer of a job that does not exist."""
    from sdi.keys import create_key

    with psycopg.connect(migrated, autocommit=True) as conn:
        _, utility = create_key(conn, "utility", "lighting company uploads")
        _, colleague = create_key(conn, "utility", "lighting company, night shift")
        _, land = create_key(conn, "land", "land office uploads")
    sample = settings.source_dir / "utility" / "street_lamps.gpkg"
    body = {
        "inputs": {
            "job": "utility_street_lamps",
            "dry_run": True,
            "file": {
                "filename": sample.name,
                "value": base64.b64encode(sample.read_bytes()).decode(),
            },
        }
    }
    url = "/processes/etl-run/execution"
    assert api.post(url, json=body).status_code == 401
    other = api.post(url, json=body, headers={"X-API-Key": land, "Prefer": "respond-async"})
    assert other.status_code == 403 and "may not deliver" in other.json()["description"]

    started = api.post(url, json=body, headers={"X-API-Key": utility, "Prefer": "respond-async"})
    assert started.status_code == 201, started.text
    job = f"/jobs/{started.json()['jobID']}"
    for _ in range(600):
        status = api.get(job, headers={"X-API-Key": utility}, params={"f": "json"}).json()
        if status["status"] in ("successful", "failed"):
            break
        time.sleep(0.2)
    assert status["status"] == "successful", status
    result = api.get(f"{job}/results", params={"f": "json"}, headers={"X-API-Key": utility})
    assert result.status_code == 200, result.text
    report = result.json()
    assert report["job"] == "utility_street_lamps" and report["status"] == "succeeded"
    assert report["message"] == "dry run: nothing was written"

    # the whole department sees it: status, result, and the job in its list
    seen = api.get(job, headers={"X-API-Key": colleague}, params={"f": "json"})
    assert seen.status_code == 200 and seen.json()["status"] == "successful", seen.text
    shared = api.get(f"{job}/results", params={"f": "json"}, headers={"X-API-Key": colleague})
    assert shared.status_code == 200 and shared.json() == report
    listed = api.get("/jobs", params={"f": "json"}, headers={"X-API-Key": colleague}).json()
    assert started.json()["jobID"] in {j["jobID"] for j in listed["jobs"]}
    # another department and anonymous: as for a job that does not exist
    missing = "/jobs/00000000-0000-4000-8000-000000000000"
    for headers in ({"X-API-Key": land}, {}):
        for path in (job, f"{job}/results"):
            answer = api.get(path, headers=headers, params={"f": "json"})
            nothing = api.get(path.replace(job, missing), headers=headers, params={"f": "json"})
            assert answer.status_code == nothing.status_code == 404, (headers, path)
            assert answer.json()["type"] == nothing.json()["type"]
    listed = api.get("/jobs", params={"f": "json"}, headers={"X-API-Key": land}).json()
    assert started.json()["jobID"] not in {j["jobID"] for j in listed["jobs"]}


def test_changed_with_nothing_to_do_imports_nothing_heavy(warehouse: str, tmp_path: Path) -> None:
    """The timer runs ``sdi etl run --changed`` every few minutes: with nothing changed it is a
    new process that decides and exits, so the start-up is the cost (issue 12: under 1 s for 50
    jobs). Nothing that reads, checks or serves data may be imported on that path."""
    import subprocess
    import sys

    _lamp_jobs(tmp_path, 2)
    env = _env(warehouse, tmp_path)
    assert d.sdi("etl", "run", "--changed", **env).exit_code == 0
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sdi", "etl", "run", "--changed"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lamps_1: unchanged since its last run" in done.stderr
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "sdi.etl.inbox" in imported  # the importtime lines were read
    heavy = {"geopandas", "shapely", "pygeoapi", "rasterio", "pandas", "numpy", "pyogrio", "pyproj"}
    assert not heavy & imported, sorted(heavy & imported)


def test_the_sdi_command_imports_its_groups_when_called() -> None:
    """`sdi` imports another package's command group only when it is called (every command is
    a new process); a mistyped group is still suggested."""
    import subprocess
    import sys

    probe = (
        "import sys, sdi.cli; "
        "print(sorted(m for m in ('sdi.etl.cli', 'sdi.etl.scaffold', 'sdi.publish.cli', "
        "'sdi.serve', 'pandas', 'jsonschema') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout
    typo = d.sdi("etll")
    assert typo.exit_code == 2 and "Did you mean 'etl'?" in typo.output, typo.output
    assert d.sdi("layer", "--help").exit_code == 0
