"""``sdi etl report RUN --html``: one self-contained page per run (issue 12, item 7)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import pandas as pd
import psycopg
import pytest
import shapely

from tests.support import deliveries as d


@pytest.fixture(scope="module")
def warehouse(migrated: str, settings):
    with d.warehouse(migrated, settings, "sdi_test_report_html") as url:
        yield url


def _env(url: str, folder: Path) -> dict[str, str]:
    return {
        "SDI_DATABASE_URL": url,
        "SDI_JOBS_DIR": str(folder / "jobs"),
        "SDI_SOURCE_DIR": str(folder / "inbox"),
        "SDI_STATE_DIR": str(folder / "state"),
    }


def _second_delivery():
    """Of 20 lamps: 3 gone, 2 with another power, 2 new, 1 moved 60 km out of the province."""
    first = d.lamps()
    second = first.iloc[3:].copy()
    second.loc[second.index[:2], "power_w"] = 400
    new = d.lamps(2, prefix="NEW", lat=20.96)
    far = d.lamps(1, prefix="FAR", lon=105.9)
    return first, gpd.GeoDataFrame(
        pd.concat([second, new, far]), geometry="geometry", crs=first.crs
    )


def test_html_report(warehouse: str, tmp_path: Path) -> None:
    first, second = _second_delivery()
    env = _env(warehouse, tmp_path)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "lamps.yml").write_text(
        d.lamp_spec("utility/lamps.gpkg", ratio=0.1), encoding="utf-8"
    )
    path = tmp_path / "inbox" / "utility" / "lamps.gpkg"
    d.write(first, path, layer="lamps")
    assert d.sdi("etl", "run", "lamps", **env).exit_code == 0
    path.unlink()
    d.write(second, path, layer="lamps")
    result = d.sdi("etl", "run", "lamps", **env)
    assert result.exit_code == 0, result.output
    with psycopg.connect(warehouse) as conn:
        run_id = conn.execute("SELECT max(run_id) FROM etl.runs").fetchone()[0]

    page_path = tmp_path / "report.html"
    result = d.sdi("etl", "report", str(run_id), "--html", str(page_path), **env)
    assert result.exit_code == 0, result.output
    page = page_path.read_text(encoding="utf-8")

    # self-contained: nothing fetched from anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page
    # counts, the reason, the evidence
    assert f"Run {run_id} of job lamps" in page
    assert "outside the expected extent" in page
    assert "EPSG:5899" in page  # the file's own CRS, found in the GeoPackage
    assert "lamps.gpkg" in page
    # the map: 19 accepted-or-changed points of this run in blue, the far one in red
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count('fill="#d22"') == 1
    assert svg.count('fill="#2f6fb0"') == 4  # the features this run wrote: 2 changed + 2 new
    # the diff per commune: 2 added, 2 changed, 3 retired in 06685
    diff = page[page.index("per commune") :]
    cells = re.findall(r"<tr><td>06685[^<]*</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>", diff)
    assert cells == [("2", "2", "3")], diff[:600]

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium:  # what a person sees: the page renders (the PNG is kept for a look)
        png = tmp_path / "report.png"
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--screenshot={png}", "--window-size=1000,1400", page_path.as_uri()],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert png.exists() and png.stat().st_size > 10_000


def test_map_draws_every_kind() -> None:
    from sdi.etl.report_html import Shape, svg_map

    shapes = [
        Shape("accepted", shapely.box(107.0, 20.9, 107.01, 20.91)),
        Shape("repaired", shapely.LineString([(107.0, 20.9), (107.02, 20.92)])),
        Shape("rejected", shapely.Point(107.03, 20.93), "row 7: no geometry <x>"),
    ]
    svg = svg_map(shapes)
    assert svg.count("<path") == 2 and svg.count("<circle") == 1
    assert "row 7: no geometry &lt;x&gt;" in svg


def test_unknown_run_is_an_error_not_a_traceback(warehouse: str, tmp_path: Path) -> None:
    result = d.sdi(
        "etl", "report", "999999", "--html", str(tmp_path / "x.html"), **_env(warehouse, tmp_path)
    )
    assert result.exit_code == 2 and "no run 999999" in result.output
    assert not (tmp_path / "x.html").exists()
