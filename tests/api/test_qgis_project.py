"""The ready QGIS project, opened headless by Debian's QGIS against the test server; PostGIS
layers opened from the test database pick up the default styles; the planner's guide's
requests work against the sample data."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from sdi.layers import load_layers
from sdi.publish.qgis_project import group_of, layer_id, public_layers, render_project
from sdi.publish.styles import geometry_kinds, read_style, styles_dir, write_styles
from sdi.settings import PROJECT_DIR, Settings
from tests.api.test_qgis import _qgis_available, run_qgis_probe

PROBE = Path(__file__).parent.parent / "clients" / "qgis_project_probe.py"
GUIDE = PROJECT_DIR / "docs" / "planner-guide.md"
EPSG_5899 = "http://www.opengis.net/def/crs/EPSG/0/5899"


def expected_renderer(layers_dir: Path, style_name: str) -> dict:
    renderer = read_style(styles_dir(layers_dir), style_name).qml_root.find("renderer-v2")
    expected = {"type": renderer.get("type")}
    if expected["type"] == "categorizedSymbol":
        expected["categories"] = len(renderer.find("categories"))
    return expected


def _renderer(info: dict) -> dict:
    return {k: v for k, v in info["renderer"].items() if k != "attribute"}


@pytest.mark.skipif(
    not _qgis_available(),
    reason="QGIS is not installed (apt-get install python3-qgis; ./dev test installs it)",
)
def test_qgis_opens_the_project_and_the_styled_postgis_layers(
    server: str, settings: Settings, api, tmp_path: Path
) -> None:
    layers = load_layers(settings)
    with psycopg.connect(settings.database_url) as conn:
        write_styles(conn, layers, settings.layers_dir)
        kinds = geometry_kinds(conn, layers)
        # a collection may be empty in the sample data (reports that only come by POST):
        # it must then open valid; every other one must give QGIS a feature
        filled = {
            layer.table
            for layer in layers
            if layer.id in kinds
            and conn.execute(f"SELECT EXISTS (SELECT FROM {layer.table})").fetchone()[0]
        }
    project = tmp_path / "sdi.qgs"
    project.write_text(render_project(layers, kinds, settings, server), encoding="utf-8")
    public = [layer for layer in public_layers(layers) if layer.id in kinds]
    # the PostGIS tables QGIS opens as a planner does, with their default (public) style
    defaults: dict[str, str] = {}
    for layer in sorted(layers, key=lambda x: x not in public):
        if layer.kind == "features" and layer.table not in defaults:
            defaults[layer.table] = layer.style or f"default_{kinds[layer.id]}"
    db = conninfo_to_dict(settings.database_url)
    conninfo = " ".join(
        f"{key}='{db[key]}'" for key in ("host", "port", "dbname", "user", "password")
    )
    out = run_qgis_probe(PROBE, str(project), conninfo, *defaults, runtime_dir=tmp_path)

    assert out["read"] and out["crs"] == f"EPSG:{settings.province_srid}"
    assert out["ellipsoid"] == "NONE"  # planar measures in VN-2000 TM-3, like area_m2
    assert set(out["layers"]) == {layer_id(layer) for layer in public}
    for layer in public:
        assert layer_id(layer) in out["groups"][group_of(layer)], layer.id
    assert {"Hazard", "Utility", "Land"} <= set(out["groups"])
    for layer in public:
        got = out["layers"][layer_id(layer)]
        assert got["valid"] and got["provider"] == "OAPIF", layer.id
        if layer.table not in filled:
            # QGIS 3.22 learns an OAPIF layer's geometry type from its first features: an
            # empty collection opens valid but without geometry, hence without a renderer
            continue
        assert got["feature"] is not None, f"{layer.id}: no feature read through OAPIF"
        style = layer.style or f"default_{kinds[layer.id]}"
        assert _renderer(got) == expected_renderer(settings.layers_dir, style), layer.id
    assert {"parcels", "zoning", "buildings", "lamps", "flood_zones", "warnings"} <= {
        layer.id for layer in public if layer.table in filled
    }
    assert out["layers"]["sdi_oapif_parcels"]["min_scale"] == 25000

    # QGIS puts the service's WGS 84 points where the service's own VN-2000 output is
    lamp = out["layers"]["sdi_oapif_lamps"]
    served = api.get(
        "/collections/lamps/items",
        params={"crs": EPSG_5899, "filter": f"lamp_code = '{lamp['feature'][0]}'"},
    ).json()["features"][0]["geometry"]["coordinates"]
    assert abs(lamp["projected"][0] - served[0]) < 0.05
    assert abs(lamp["projected"][1] - served[1]) < 0.05

    for table, style in defaults.items():
        got = out["postgis"][table]
        assert got["valid"] and (got["feature"] is not None or table not in filled), table
        assert _renderer(got) == expected_renderer(settings.layers_dir, style), table


def guide_requests() -> list[tuple[str, dict[str, str]]]:
    """Every ``curl -sG URL --data-urlencode "k=v"…`` of the planner's guide."""
    text = GUIDE.read_text(encoding="utf-8").replace("\\\n", " ")
    requests = []
    for line in text.splitlines():
        match = re.match(r"curl -sG http://127\.0\.0\.1:5000(\S+)(.*)", line.strip())
        if match:
            params = dict(
                p.split("=", 1) for p in re.findall(r'--data-urlencode "([^"]+)"', match[2])
            )
            requests.append((match[1], params))
    return requests


def test_the_guide_has_cql2_and_vn2000_examples() -> None:
    requests = guide_requests()
    assert sum("filter" in params for _, params in requests) >= 6
    assert any(params.get("crs") == EPSG_5899 for _, params in requests)


@pytest.mark.parametrize(("path", "params"), guide_requests())
def test_the_guides_requests_work_on_the_sample_data(api, path, params) -> None:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["features"], f"{path} {params}: no feature in the sample data"
    if params.get("crs") == EPSG_5899:
        assert response.headers["content-crs"] == f"<{EPSG_5899}>"
        x, y = body["features"][0]["geometry"]["coordinates"][:2]
        assert 300_000 < x < 700_000 and 2_200_000 < y < 2_500_000  # easting, northing (m)


def test_the_project_file_is_well_formed_for_any_service_url(settings, migrated) -> None:
    layers = load_layers(settings)
    with psycopg.connect(migrated) as conn:
        kinds = geometry_kinds(conn, layers)
    text = render_project(layers, kinds, settings, "https://sdi.example.gov.vn/api/")
    root = ET.fromstring(text)
    sources = [m.findtext("datasource") for m in root.iter("maplayer")]
    assert sources and all(s.startswith("url='https://sdi.example.gov.vn/api' ") for s in sources)
