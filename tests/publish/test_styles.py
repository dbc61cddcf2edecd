"""Default QGIS styles: committed QML that fits each layer, written to a real PostGIS's
layer_styles table the way QGIS reads it, and the QGIS project grouped by domain."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import psycopg
import pytest

from sdi.errors import ConfigError
from sdi.layers import load_layer, load_layers
from sdi.publish.qgis_project import GROUPS, layer_id, public_layers, render_project
from sdi.publish.styles import (
    PREFIX,
    geometry_kinds,
    read_style,
    style_of,
    styles_dir,
    write_styles,
)
from sdi.settings import PROJECT_DIR, Settings

STYLES = PROJECT_DIR / "layers" / "styles"
# (column, type) of the table QGIS 3.22 creates on its first "save style to database"
QGIS_COLUMNS = [
    ("id", "integer"),
    ("f_table_catalog", "character varying"),
    ("f_table_schema", "character varying"),
    ("f_table_name", "character varying"),
    ("f_geometry_column", "character varying"),
    ("stylename", "text"),
    ("styleqml", "xml"),
    ("stylesld", "xml"),
    ("useasdefault", "boolean"),
    ("description", "text"),
    ("owner", "character varying"),
    ("ui", "xml"),
    ("update_time", "timestamp without time zone"),
    ("type", "character varying"),
]


def renderer_fields(qml: ET.Element) -> set[str]:
    """The attributes a style's renderer reads: a field, or the quoted fields of an expression."""
    attr = qml.find("renderer-v2").get("attr")
    if attr is None:
        return set()
    return set(re.findall(r'"([^"]+)"', attr)) if '"' in attr else {attr}


def test_every_layer_has_a_style_that_fits_its_table(migrated: str, settings: Settings) -> None:
    layers = load_layers(settings)
    with psycopg.connect(migrated) as conn:
        kinds = geometry_kinds(conn, layers)
    features = [layer for layer in layers if layer.kind == "features"]
    assert {layer.id for layer in features} <= set(kinds), "every layer's table is in PostGIS"
    for layer in features:
        style = style_of(layer, kinds[layer.id], styles_dir(settings.layers_dir))
        assert style is not None and style.geometry == kinds[layer.id], layer.id
        # a misspelt field would silently draw everything as "all other values"
        assert renderer_fields(style.qml_root) <= set(layer.properties), layer.id
    # the layers this task styled have their own (categorised, except gauges) style
    styled = {layer.id: layer.style for layer in features}
    assert styled["parcels"] == "parcels" and styled["permits_register"] == "permits"
    for name in ("parcels", "zoning", "buildings", "lamps", "flood_zones", "warnings"):
        renderer = read_style(STYLES, name).qml_root.find("renderer-v2")
        assert renderer.get("type") == "categorizedSymbol", name
        assert len(renderer.find("categories")) >= 3, name


def test_styles_are_generated_from_the_palette() -> None:
    """Each style in styles.yml has its .qml and .sld (regenerate with scripts/make_styles.py)."""
    import yaml

    palette = yaml.safe_load((STYLES / "styles.yml").read_text(encoding="utf-8"))
    names = set(palette["styles"]) | {f"default_{kind}" for kind in palette["defaults"]}
    assert {p.stem for p in STYLES.glob("*.qml")} == names
    assert {p.stem for p in STYLES.glob("*.sld")} == names
    # the print layout template, with the items sdi.publish.qgis_project fills
    template = ET.parse(STYLES / "print_a3.qpt").getroot()
    items = {item.get("id") for item in template.iter("LayoutItem")}
    assert {"title", "subtitle", "map", "legend", "scalebar", "north", "sources"} <= items
    lamps = read_style(STYLES, "lamps").qml_root
    categories = {c.get("value"): c.get("label") for c in lamps.iter("category")}
    assert categories == {row[0]: row[1] for row in palette["styles"]["lamps"]["categories"]}


def test_a_missing_or_broken_style_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "styles").mkdir()
    shutil.copy(STYLES / "lamps.qml", tmp_path / "styles" / "lamps.qml")
    text = (PROJECT_DIR / "layers" / "lamps.yml").read_text(encoding="utf-8")
    (tmp_path / "lamps.yml").write_text(text.replace("style: lamps", "style: lamp"))
    with pytest.raises(ConfigError, match=r"lamps\.yml: style: lamp: no file styles/lamp\.qml"):
        load_layer(tmp_path / "lamps.yml")
    (tmp_path / "styles" / "broken.qml").write_text("<qgis><renderer-v2>")
    with pytest.raises(ConfigError, match=r"broken\.qml: not a well-formed QGIS style"):
        read_style(tmp_path / "styles", "broken")


def _rows(db: psycopg.Connection) -> dict[str, tuple]:
    return {
        name: (i, table, default)
        for i, name, table, default in db.execute(
            "SELECT id, stylename, f_table_name, useasdefault FROM public.layer_styles "
            "WHERE f_table_catalog = current_database() ORDER BY id"
        )
    }


def test_write_styles_creates_the_qgis_table_and_is_idempotent(db, settings: Settings) -> None:
    layers = load_layers(settings)
    db.execute("DROP TABLE IF EXISTS public.layer_styles")
    with psycopg.connect(settings.database_url) as conn:
        first = write_styles(conn, layers, settings.layers_dir)
    assert first.created_table and not first.skipped
    columns = db.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = 'layer_styles' ORDER BY ordinal_position"
    ).fetchall()
    assert columns == QGIS_COLUMNS
    features = [layer for layer in layers if layer.kind == "features"]
    rows = _rows(db)
    assert set(rows) == {PREFIX + layer.id for layer in features}
    assert sorted(first.written) == sorted(layer.id for layer in features)
    # one default per table; the public permits layer's, not the internal register's
    defaults = [table for _, table, default in rows.values() if default]
    assert len(defaults) == len(set(defaults)) == len({layer.table for layer in features})
    assert rows["sdi: permits"][2] and not rows["sdi: permits_register"][2]
    qml = db.execute(
        "SELECT styleqml::text FROM public.layer_styles WHERE stylename = 'sdi: lamps'"
    ).fetchone()[0]
    assert qml == (STYLES / "lamps.qml").read_text(encoding="utf-8")

    with psycopg.connect(settings.database_url) as conn:
        again = write_styles(conn, layers, settings.layers_dir)
    assert not again.written and not again.created_table and not again.removed
    assert sorted(again.unchanged) == sorted(first.written)
    assert _rows(db) == rows  # same rows, same ids


def test_user_styles_are_never_touched(db, settings: Settings) -> None:
    layers = load_layers(settings)
    with psycopg.connect(settings.database_url) as conn:
        write_styles(conn, layers, settings.layers_dir)
    # what QGIS does when a planner saves "my lamps" as the default: others lose the default
    db.execute(
        "UPDATE public.layer_styles SET useasdefault = false "
        "WHERE f_table_name = 'street_lamps_current'"
    )
    db.execute(
        "INSERT INTO public.layer_styles (f_table_catalog, f_table_schema, f_table_name, "
        "f_geometry_column, stylename, styleqml, useasdefault) VALUES "
        "(current_database(), 'utility', 'street_lamps_current', 'geom', 'my lamps', "
        "XMLPARSE(DOCUMENT '<qgis/>'), true), "
        "('another_db', 'utility', 'street_lamps_current', 'geom', 'sdi: lamps', "
        "XMLPARSE(DOCUMENT '<qgis/>'), true), "
        "(current_database(), 'utility', 'gone', 'geom', 'sdi: gone', "
        "XMLPARSE(DOCUMENT '<qgis/>'), true)"
    )
    user_row = db.execute(
        "SELECT id, styleqml::text, update_time FROM public.layer_styles "
        "WHERE stylename IN ('my lamps', 'sdi: lamps') ORDER BY id"
    ).fetchall()
    try:
        with psycopg.connect(settings.database_url) as conn:
            result = write_styles(conn, layers, settings.layers_dir)
        assert result.not_default == ["lamps"] and result.removed == ["gone"]
        rows = _rows(db)
        assert rows["my lamps"][2] and not rows["sdi: lamps"][2]
        assert "sdi: gone" not in rows
        assert (
            db.execute(
                "SELECT id, styleqml::text, update_time FROM public.layer_styles "
                "WHERE stylename IN ('my lamps', 'sdi: lamps') ORDER BY id"
            ).fetchall()
            == user_row
        ), "the user's style and another database's row are unchanged"
    finally:
        db.execute("DELETE FROM public.layer_styles WHERE stylename = 'my lamps'")
        db.execute("DELETE FROM public.layer_styles WHERE f_table_catalog = 'another_db'")
    with psycopg.connect(settings.database_url) as conn:
        write_styles(conn, layers, settings.layers_dir)
    assert _rows(db)["sdi: lamps"][2], "ours is the default again once the user's is gone"


def test_project_groups_layers_by_domain(migrated: str, settings: Settings, tmp_path) -> None:
    """A layer added later (here a planning layer without a style) lands in its group with
    the default style of its geometry; internal layers stay out."""
    layers_dir = tmp_path / "layers"
    shutil.copytree(settings.layers_dir, layers_dir)
    (layers_dir / "planning_test.yml").write_text(
        "title: Zoning again\ndescription: A planning layer added later.\ndomain: planning\n"
        "source: {table: land.zoning_current}\nproperties: [zone_code]\n"
    )
    local = settings.model_copy(update={"layers_dir": layers_dir})
    layers = load_layers(local)
    with psycopg.connect(migrated) as conn:
        kinds = geometry_kinds(conn, layers)
    root = ET.fromstring(render_project(layers, kinds, local, "http://sdi.example:8080/"))
    groups = {
        g.get("name"): [n.get("id") for n in g.iter("layer-tree-layer")]
        for g in root.find("layer-tree-group").findall("layer-tree-group")
    }
    names = dict(GROUPS)
    assert "sdi_oapif_planning_test" in groups[names["planning"]]
    hazard = groups[names["hazard"]]  # points above polygons
    assert hazard.index("sdi_oapif_gauges") < hazard.index("sdi_oapif_flood_zones")
    assert {"sdi_oapif_lamps", "sdi_oapif_water_pipes"} <= set(groups[names["utility"]])
    listed = [i for ids in groups.values() for i in ids]
    assert sorted(listed) == sorted(layer_id(layer) for layer in public_layers(layers))
    assert "sdi_oapif_permits_register" not in listed and "sdi_oapif_catalogue" not in listed
    maplayers = {m.findtext("id"): m for m in root.iter("maplayer")}
    planning = maplayers["sdi_oapif_planning_test"]
    assert planning.findtext("datasource") == (
        "url='http://sdi.example:8080' typename='planning_test' restrictToRequestBBOX='1'"
    )
    assert planning.find("renderer-v2").get("type") == "singleSymbol"
    assert planning.get("geometry") == "Polygon"
    assert maplayers["sdi_oapif_parcels"].get("minScale") == "10000"
    # a layer file without Vietnamese text keeps its English title
    assert planning.findtext("layername") == "Zoning again"
    assert maplayers["sdi_oapif_parcels"].findtext("layername") == "Thửa đất"
    assert root.find("projectCrs/spatialrefsys/authid").text == f"EPSG:{settings.province_srid}"


def test_publish_command_writes_styles_and_project(
    migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from sdi.cli import app
    from sdi.settings import get_settings

    config = tmp_path / "pygeoapi-config.yml"  # never the repository's copy
    monkeypatch.setenv("SDI_PYGEOAPI_CONFIG", str(config))
    get_settings.cache_clear()
    try:
        project = tmp_path / "qgis" / "sdi.qgs"
        args = ["publish", "--qgis-project", str(project), "--service-url", "http://x.test:8"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "QGIS styles in layer_styles" in result.output and config.exists()
        assert "url='http://x.test:8' typename='lamps'" in project.read_text(encoding="utf-8")

        # no warehouse: the config is still written, the message says what was not
        config.unlink()
        monkeypatch.setenv("SDI_DATABASE_URL", "postgresql://sdi:x@127.0.0.1:1/none")
        get_settings.cache_clear()
        result = CliRunner().invoke(app, ["publish"])
        assert result.exit_code == 6 and config.exists()
        assert "the QGIS styles are not" in result.output and "--no-styles" in result.output
        assert CliRunner().invoke(app, ["publish", "--no-styles"]).exit_code == 0
    finally:
        get_settings.cache_clear()


def test_layers_and_legends_speak_vietnamese(settings: Settings) -> None:
    """Every layer has a Vietnamese title (the QGIS project's layer name) and description;
    a graduated legend says its unit in its first class."""
    for layer in load_layers(settings):
        vi = layer.i18n.get("vi", {})
        assert vi.get("title") and vi.get("description"), layer.id
        assert vi["title"] != layer.title, layer.id
    for path in STYLES.glob("*.qml"):
        renderer = read_style(STYLES, path.stem).qml_root.find("renderer-v2")
        if renderer.get("type") == "graduatedSymbol":
            first = renderer.find("ranges")[0].get("label")
            assert re.search(r"\(.+\)", first), f"{path.name}: no unit in {first!r}"
