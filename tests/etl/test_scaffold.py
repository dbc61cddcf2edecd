"""`sdi layer new`: from a file the code base has never seen to a served, styled collection.

The delivery is generated at test time with random field names (the seed is in the test's
output), in a project home of its own (a copy of schemas/, empty jobs/ and layers/) and a
scratch database; every step is the real command an analyst types, and the collection is read
back over HTTP from a server started on those files.
"""

from __future__ import annotations

import os
import random
import shutil
import string
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import psycopg
import pytest
import shapely
import yaml

from sdi.etl.scaffold import style_colour
from sdi.layers import load_layer
from sdi.settings import PROJECT_DIR, Settings, get_settings
from tests.conftest import free_port
from tests.support import etl_formats as fx
from tests.support.etl_runs import scratch_database

NAMES = ["Chùa Long Tiên", "Đền Cửa Ông", "Bãi Cháy", "Nhà thờ Hạ Long", "Bảo tàng Quảng Ninh"]


def random_name(rng: random.Random, length: int = 8) -> str:
    first = rng.choice(string.ascii_letters)
    return first + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def random_delivery(path: Path, rng: random.Random, n: int = 250) -> dict:
    """A GeoPackage of points in Hạ Long with random field names: a key, a Vietnamese text,
    an integer, a float and a repeated code (not a key)."""
    key, text, count, ratio, group = (random_name(rng) for _ in range(5))
    text = "Tên_" + text  # a non-ASCII field name too
    frame = gpd.GeoDataFrame(
        {
            group: [rng.choice(["A", "B", "C"]) for _ in range(n)],
            key: [f"{random_name(rng, 4)}-{i:05d}" for i in range(n)],
            text: [rng.choice(NAMES) for _ in range(n)],
            count: [rng.randint(0, 5000) for _ in range(n)],
            ratio: [round(rng.random(), 4) for _ in range(n)],
        },
        geometry=shapely.points(
            [107.02 + rng.random() * 0.1 for _ in range(n)],
            [20.93 + rng.random() * 0.04 for _ in range(n)],
        ),
        crs="EPSG:4326",
    )
    frame.to_file(path, layer=random_name(rng).lower(), driver="GPKG")
    return {
        "key": key,
        "text": text,
        "count": count,
        "ratio": ratio,
        "group": group,
        "n": n,
        "frame": frame,
    }


@pytest.fixture()
def project(tmp_path: Path, migrated: str, settings: Settings, monkeypatch) -> Iterator[Settings]:
    """A project home of its own, its scratch database, and SDI_* pointing at both."""
    home = tmp_path / "home"
    shutil.copytree(
        PROJECT_DIR / "schemas", home / "schemas", ignore=shutil.ignore_patterns("__pycache__")
    )
    (home / "jobs").mkdir()
    shutil.copytree(PROJECT_DIR / "layers" / "styles", home / "layers" / "styles")
    (home / "deliveries").mkdir()
    env = {
        "SDI_HOME": str(home),
        "SDI_JOBS_DIR": str(home / "jobs"),
        "SDI_LAYERS_DIR": str(home / "layers"),
        "SDI_SOURCE_DIR": str(home / "deliveries"),
        "SDI_PYGEOAPI_CONFIG": str(home / "pygeoapi-config.yml"),
        "SDI_STATE_DIR": str(tmp_path / "state"),
        # its own server: the session's may already hold the test settings' port
        "SDI_PORT": str(free_port()),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    with scratch_database(migrated, get_settings(), "sdi_scaffold") as url:
        monkeypatch.setenv("SDI_DATABASE_URL", url)
        get_settings.cache_clear()
        yield get_settings()
    get_settings.cache_clear()


def sdi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sdi", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
        check=False,
    )


def test_a_file_never_seen_becomes_a_served_styled_layer(project: Settings) -> None:
    seed = random.randrange(1 << 30)
    print(f"random delivery seed: {seed}")
    rng = random.Random(seed)
    delivery = project.source_dir / "culture" / "di_tich.gpkg"
    delivery.parent.mkdir()
    made = random_delivery(delivery, rng)
    name = "culture_sites"

    # 1. scaffold
    done = sdi(
        "layer",
        "new",
        name,
        "--from",
        str(delivery),
        "--department",
        "Culture office",
        "--domain",
        "utility",
    )
    assert done.returncode == 0, done.stderr
    assert "EPSG:4326" in done.stderr and f"natural key {made['key']}" in done.stderr
    job_file, layer_file = project.jobs_dir / f"{name}.yml", project.layers_dir / f"{name}.yml"
    job = yaml.safe_load(job_file.read_text(encoding="utf-8"))
    assert job["source"]["path"] == "culture/di_tich.gpkg"  # relative to SDI_SOURCE_DIR
    assert job["source"]["srid"] == 4326 and job["natural_key"] == made["key"]
    assert job["target"] == {
        "table": f"utility.{name}",
        "geometry": "Point",
        "columns": {
            made["group"].lower(): "text",
            made["key"].lower(): "text",
            "ten_" + made["text"][4:].lower(): "text",
            made["count"].lower(): "integer",
            made["ratio"].lower(): "float",
        },
    }
    assert "# GeoPackage stores text as UTF-8" in job_file.read_text(encoding="utf-8")
    layer = load_layer(layer_file)  # valid against the schema, style file present
    assert layer.style == name and (project.layers_dir / "styles" / f"{name}.sld").is_file()

    # 2. the table's migration, 3. the load, 4. publishing
    synced = sdi("table", "sync", "--apply")
    assert synced.returncode == 0, synced.stderr
    assert list((project.home / "schemas/migrations/versions").glob(f"t0001_{name}.py"))
    loaded = sdi("etl", "run", name)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    published = sdi("publish")
    assert published.returncode == 0, published.stderr
    with psycopg.connect(project.database_url) as conn:
        assert conn.execute(f"SELECT count(*) FROM utility.{name}_current").fetchone() == (
            made["n"],
        )
        # the default style QGIS applies when it opens the table
        # (the layer publishes the table's _current view: QGIS opens that)
        qml, default = conn.execute(
            "SELECT styleqml::text, useasdefault FROM public.layer_styles "
            "WHERE f_table_schema = 'utility' AND f_table_name = %s",
            (f"{name}_current",),
        ).fetchone()
    colour = style_colour(name)
    rgb = ",".join(str(int(colour[i : i + 2], 16)) for i in (1, 3, 5))
    assert default and f'name="color" value="{rgb},255"' in qml

    # 5. served
    from sdi.serve import Server

    server = Server(project)
    server.start()
    try:
        with httpx.Client(base_url=project.server_url, timeout=60) as client:
            collection = client.get(f"/collections/{name}", params={"f": "json"})
            assert collection.status_code == 200, collection.text
            items = client.get(
                f"/collections/{name}/items", params={"f": "json", "limit": 1000}
            ).json()
    finally:
        server.stop(quiet=True)
    features = items["features"]
    assert len(features) == made["n"]
    frame = made["frame"]
    key_column, text_column = made["key"].lower(), "ten_" + made["text"][4:].lower()
    served = {f["properties"][key_column]: f for f in features}
    assert set(served) == set(frame[made["key"]])
    row = frame.iloc[7]
    feature = served[row[made["key"]]]
    assert feature["properties"][text_column] == row[made["text"]]  # Vietnamese intact
    assert feature["properties"][made["count"].lower()] == row[made["count"]]
    assert np.allclose(feature["geometry"]["coordinates"], [row.geometry.x, row.geometry.y])


def test_a_legacy_shapefile_is_inspected_from_its_prj_and_bytes(tmp_path: Path, settings) -> None:
    """TCVN3 text without a .cpg, VN-2000 .prj: the spec says so, with the evidence."""
    from sdi.etl.scaffold import inspect_file

    path = fx.parcel_shapefile(tmp_path / "thua_dat.shp", fx.parcels(30), "tcvn3")
    found = inspect_file(path, settings=settings)
    assert found.driver == "ESRI Shapefile" and found.geometry == "MultiPolygon"
    assert found.srid == fx.SRID, found.srid_evidence
    assert "thua_dat.prj" in found.srid_evidence
    assert found.encoding == "tcvn3" and "TCVN3" in found.encoding_evidence
    assert [f.column for f in found.fields][:3] == ["maxa", "soto", "sothua"]
    owner = next(f for f in found.fields if f.source == "CHUSDD")
    assert any(any(c in e for c in "ăâđêôơư") for e in owner.examples), owner.examples
    # one sheet of one commune: the parcel number is the only field unique in the sample,
    # and the evidence says it was a sample
    assert found.natural_key == "SOTHUA" and "in all 30 sampled rows" in found.natural_key_evidence


def test_bad_input_is_a_clear_error(tmp_path: Path, settings, monkeypatch) -> None:
    monkeypatch.setenv("SDI_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("SDI_LAYERS_DIR", str(tmp_path / "layers"))
    broken = tmp_path / "broken.gpkg"
    broken.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    mixed = tmp_path / "mixed.geojson"
    mixed.write_text(
        '{"type": "FeatureCollection", "features": ['
        '{"type": "Feature", "properties": {"ma": "a"}, '
        '"geometry": {"type": "Point", "coordinates": [107, 20.9]}}, '
        '{"type": "Feature", "properties": {"ma": "b"}, '
        '"geometry": {"type": "LineString", "coordinates": [[107, 20.9], [107.1, 20.9]]}}]}',
        encoding="utf-8",
    )
    for args, says in (
        (["x_layer", "--from", str(tmp_path / "missing.gpkg")], "file not found"),
        (["x_layer", "--from", str(broken)], "GDAL cannot open it"),
        (["Bad-Name", "--from", str(broken)], "layer name 'Bad-Name'"),
        (["x_layer", "--from", str(mixed)], "'LineString + Point' (mixed or unknown)"),
        (["x_layer", "--from", str(mixed), "--layer", "nope"], "no layer 'nope'"),
    ):
        done = sdi("layer", "new", *args)
        assert done.returncode != 0 and says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "jobs").exists() or not list((tmp_path / "jobs").iterdir())


def test_a_surveyors_csv_gets_its_axes_swapped_and_a_guess_that_says_so(
    tmp_path: Path, settings
) -> None:
    """X = northing, Y = easting (VN-2000 surveyors), no CRS anywhere: the spec maps x from
    Y, and the SRID is a guess the comment calls one."""
    from sdi.etl.scaffold import inspect_file, render_job

    path = tmp_path / "den.csv"
    path.write_text(
        "ma_den,ten_duong,X,Y,cong_suat,ma_xa\n"
        "DT001,Đường Trần Phú,2331234.5,427123.4,120,06685\n"
        "DT002,Phố Cao Thắng,2331300.1,427200.9,150,06685\n"
        "DT003,Đường Hạ Long,2331400.7,427300.2,100,06688\n",
        encoding="utf-8",
    )
    found = inspect_file(path, settings=settings)
    assert (found.x, found.y) == ("Y", "X")
    assert found.srid == settings.province_srid and "GUESSED" in found.srid_evidence
    types = {f.column: f.type for f in found.fields}
    assert types == {"ma_den": "text", "ten_duong": "text", "cong_suat": "integer", "ma_xa": "text"}
    assert found.natural_key == "ma_den"
    spec = yaml.safe_load(render_job("den", found, "utility.den", None, settings))
    assert spec["source"]["geometry"] == {"x": "Y", "y": "X"}
