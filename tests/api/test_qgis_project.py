"""The ready QGIS project, opened headless by Debian's QGIS against the test server; PostGIS
layers opened from the test database pick up the default styles; the planner's guide's
requests work against the sample data."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from sdi.layers import load_layers
from sdi.publish.qgis_project import (
    group_of,
    layer_id,
    project_context,
    public_layers,
    render_project,
    title_vi,
    visible,
)
from sdi.publish.styles import geometry_kinds, read_style, styles_dir, write_styles
from sdi.settings import PROJECT_DIR, Settings
from tests.support.api import qgis_available, run_qgis_probe

PROBE = Path(__file__).parent.parent / "clients" / "qgis_project_probe.py"
RENDER_PROBE = Path(__file__).parent.parent / "clients" / "qgis_render_probe.py"
# where the renders and the printed layout are kept for a person to look at
ARTEFACTS = Path(os.environ.get("SDI_TEST_ARTEFACTS", PROJECT_DIR / ".sdi" / "test-artefacts"))
RENDER_SECONDS = 60.0  # one map view, every visible layer fetched from the service
OPAQUE_COVER = 0.5  # most of the map painted opaque by a single layer hides everything below
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
    not qgis_available(),
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
    assert {"Thiên tai và cảnh báo", "Hạ tầng kỹ thuật", "Đất đai và quy hoạch"} <= set(
        out["groups"]
    )
    # operations and warnings on top, the base data below
    assert list(out["groups"])[:2] == ["Vận hành đô thị", "Thiên tai và cảnh báo"]
    assert list(out["groups"])[-1] == "Ranh giới hành chính"
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
    assert out["layers"]["sdi_oapif_parcels"]["min_scale"] == 10000
    # Vietnamese names, the English in the abstract; derived layers in their group, off
    for layer in public:
        got = out["layers"][layer_id(layer)]
        assert got["name"] == title_vi(layer) != layer.title, layer.id
        assert layer.title in got["abstract"] and layer.description in got["abstract"]
        assert out["checked"][layer_id(layer)] == visible(layer), layer.id
    assert not out["checked"]["sdi_oapif_planning_commune_indicators"]
    assert out["checked"]["sdi_oapif_warnings"] and out["checked"]["sdi_oapif_communes"]
    assert out["layers"]["sdi_oapif_communes"]["labels"] == "commune_name"
    assert out["layers"]["sdi_oapif_parcels"]["labels"] == "parcel_no"

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
    # the print layout's legend: the layers switched on, in the layers panel's order
    checked = [
        node.get("id")
        for node in root.find("layer-tree-group").iter("layer-tree-layer")
        if node.get("checked") == "Qt::Checked"
    ]
    (layout,) = root.find("Layouts")
    legend = next(i for i in layout.iter("LayoutItem") if i.get("type") == "65642")
    assert [node.get("id") for node in legend.iter("layer-tree-layer")] == checked
    assert "sdi_oapif_communes" in checked
    assert "sdi_oapif_planning_commune_indicators" not in checked
    labels = {i.get("id"): i.get("labelText") for i in layout.iter("LayoutItem")}
    assert labels["title"] and "{" not in labels["title"] + labels["subtitle"]
    assert labels["sources"].startswith("Nguồn dữ liệu")
    # one line per department, each naming its layers (the switched-on ones) and a date
    lines = labels["sources"].splitlines()[1:-1]
    departments = [line.split(":")[0].removeprefix("• ") for line in lines]
    assert len(departments) == len(set(departments)) < len(checked)
    shown = {node.get("name") for node in legend.iter("layer-tree-layer")}
    assert all(any(title in line for line in lines) for title in shown), shown
    assert all(re.search(r"— (\d\d/\d\d/\d{4}|chưa nạp|cập nhật trực tiếp)$", x) for x in lines)


def _box(conn: psycopg.Connection, srid: int, query: str, *params) -> list[float]:
    """The VN-2000 box (xmin, ymin, xmax, ymax) of a geometry the query returns."""
    row = conn.execute(
        "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) "
        f"FROM (SELECT ST_Transform(({query}), %s) AS b) x",
        (*params, srid),
    ).fetchone()
    assert row[0] is not None, query
    return [float(v) for v in row]


@pytest.mark.skipif(
    not qgis_available(),
    reason="QGIS is not installed (apt-get install python3-qgis; ./dev test installs it)",
)
def test_the_project_renders_readably_at_three_scales_and_prints_on_a3(
    server: str, settings: Settings, tmp_path: Path
) -> None:
    layers = load_layers(settings)
    srid = settings.province_srid
    with psycopg.connect(settings.database_url) as conn:
        kinds = geometry_kinds(conn, layers)
        context = project_context(conn, layers)
        filled = {
            layer.id
            for layer in layers
            if layer.id in kinds
            and conn.execute(f"SELECT EXISTS (SELECT FROM {layer.table})").fetchone()[0]
        }
        communes = "SELECT ST_SetSRID(ST_Extent(geom)::geometry, 4326) FROM admin.communes_current"
        # the centre of the densest 500 m square of buildings: the heart of a city
        centre = (
            "SELECT ST_SnapToGrid(ST_Transform(ST_Centroid(geom), %s), 500) "
            "FROM construction.buildings_current GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
        )
        scales = {
            "province": _box(conn, srid, communes),
            # 10 km high (about 1:35,000): a city's wards
            "city": _box(conn, srid, f"SELECT ST_Expand(({centre}), 5000)", srid),
            # 600 m high (about 1:2,000): a few street blocks, parcel numbers readable
            "street": _box(conn, srid, f"SELECT ST_Expand(({centre}), 300)", srid),
        }
    artefacts = ARTEFACTS / "qgis"
    artefacts.mkdir(parents=True, exist_ok=True)
    for old in artefacts.glob("*"):
        old.unlink()
    project = artefacts / "sdi.qgs"
    project.write_text(render_project(layers, kinds, settings, server, context), encoding="utf-8")
    out = run_qgis_probe(
        RENDER_PROBE, str(project), str(artefacts), json.dumps(scales), runtime_dir=tmp_path
    )
    (artefacts / "report.json").write_text(json.dumps(out, indent=1, ensure_ascii=False))
    print(f"\nQGIS renders and the A3 print layout (PDF, PNG) are kept in {artefacts}")

    assert out["read"]
    on = {layer_id(layer): layer for layer in public_layers(layers) if layer.id in kinds}
    for name, render in out["scales"].items():
        assert Path(render["png"]).stat().st_size > 10_000, name
        assert render["seconds"] < RENDER_SECONDS, f"{name}: {render['seconds']} s"
        assert not render["errors"], f"{name}: {render['errors']}"
        # the probe drew exactly the layers the project switches on
        assert set(render["layers"]) == {i for i, layer in on.items() if visible(layer)}, name
        for lid, got in render["layers"].items():
            layer = on[lid]
            assert got["valid"], f"{name}: {layer.id} invalid"
            assert got["name"] == title_vi(layer)
            if not got["drawn"]:  # out of its scale range: nothing to check
                continue
            # the whole province shows every layer that has data; nearer, the layer may
            # simply have nothing in the view
            if name == "province" and layer.id in filled:
                assert got["features"] > 0, f"{name}: {layer.id} visible but empty"
            assert got["opaque_fraction"] < OPAQUE_COVER, (
                f"{name}: {layer.id} paints {got['opaque_fraction']:.0%} of the map opaque"
            )
    # the layers switched off open valid too (drawn together for a person to look at)
    assert set(out["off"]["layers"]) == {i for i, layer in on.items() if not visible(layer)}
    assert all(got["valid"] for got in out["off"]["layers"].values()), out["off"]
    assert not out["off"]["errors"]
    # what a planner sees at each scale: the base data only nearer in
    drawn = {
        name: {on[lid].id for lid, got in render["layers"].items() if got["drawn"]}
        for name, render in out["scales"].items()
    }
    assert {"communes", "zoning", "warnings"} <= drawn["province"]
    assert not {"parcels", "buildings"} & drawn["city"]
    assert "lamps" in drawn["city"] and "lamps" not in drawn["province"]
    assert {"parcels", "buildings", "communes"} <= drawn["street"]
    assert out["scales"]["street"]["layers"]["sdi_oapif_parcels"]["features"] > 20

    (layout,) = out["layouts"].values()
    assert layout["pages"] == 1
    assert {
        "QgsLayoutItemMap",
        "QgsLayoutItemLegend",
        "QgsLayoutItemScaleBar",
        "QgsLayoutItemPicture",
        "QgsLayoutItemLabel",
    } <= set(layout["items"])
    pdf = Path(layout["pdf"])
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 50_000
    assert Path(layout["png"]).stat().st_size > 50_000
    # every text of the print fits its box (Qt's metrics of the label's font, word-wrapped):
    # the sources, one line per department, under the legend
    for name, label in layout["labels"].items():
        assert label["text_height_mm"] <= label["height_mm"], (name, label)
    assert layout["labels"]["sources"]["lines"] <= 2 + len({d for d, _ in context.lineage.values()})

    # the check catches a layer that hides the map: communes in the plain opaque default fill
    opaque = [replace(x, style=None) if x.id == "communes" else x for x in layers]
    bad = tmp_path / "opaque" / "sdi.qgs"
    bad.parent.mkdir()
    bad.write_text(render_project(opaque, kinds, settings, server, context), encoding="utf-8")
    city = {"city": scales["city"]}
    out = run_qgis_probe(
        RENDER_PROBE, str(bad), str(bad.parent), json.dumps(city), runtime_dir=tmp_path
    )
    assert out["scales"]["city"]["layers"]["sdi_oapif_communes"]["opaque_fraction"] > OPAQUE_COVER
