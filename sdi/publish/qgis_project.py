"""A ready QGIS project (``.qgs``) of the service's public OGC API collections, styled.

``sdi publish --qgis-project PATH [--service-url URL]`` writes it. Every public feature layer
in ``layers/`` becomes an OGC API – Features layer (QGIS's ``OAPIF`` provider) of the
service, with its committed QGIS style (``layers/styles/<style>.qml``, or the plain default of
its geometry type), in a group chosen by the layer's ``domain``: a layer added later appears
in its group without any change here. Internal layers (an API key is needed) are left out.

The project speaks to the province's planners: groups and layer names in Vietnamese (the
layer file's ``i18n.vi.title``), the English title and description in the layer's abstract.
A layer is switched on when the project opens unless its file says ``qgis: {visible: false}``
(the derived layers). It opens on the four cities and carries an A3 print layout
(``print_layout``) whose sources and date come from the catalogue's lineage (``etl.runs``).

The project's CRS is the province's VN-2000 TM-3 and distances and areas are measured in it
(no ellipsoid), like the legal areas (``area_m2``) the warehouse computes.
"""

from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from sdi.layers import Layer
from sdi.publish.styles import Style, style_of, styles_dir
from sdi.settings import Settings

# Groups from top to bottom of the layers panel (so live operations draw above the base
# layers), by the layer's `domain`; layers without one go last, in "Khác" (other).
GROUPS = (
    ("operations", "Vận hành đô thị"),
    ("hazard", "Thiên tai và cảnh báo"),
    ("planning", "Phân tích quy hoạch"),
    ("construction", "Xây dựng"),
    ("utility", "Hạ tầng kỹ thuật"),
    ("land", "Đất đai và quy hoạch"),
    ("admin", "Ranh giới hành chính"),
    (None, "Khác"),
)
# QgsWkbTypes::geometryDisplayString, as QGIS writes <maplayer geometry="…">
DISPLAY_GEOMETRY = {"point": "Point", "line": "Line", "polygon": "Polygon"}
# Points above lines above polygons within a group, so nothing hides the small symbols;
# then the layers drawn only when zoomed in above the others (_detailed).
DRAW_ORDER = {"point": 0, "line": 1, "polygon": 2, None: 3}
# Attributes of a QML's root that are layer properties (scale visibility, simplification)
QML_LAYER_ATTRIBUTES = (
    "hasScaleBasedVisibilityFlag",
    "minScale",
    "maxScale",
    "symbologyReferenceScale",
    "simplifyAlgorithm",
    "simplifyDrawingHints",
    "simplifyDrawingTol",
    "simplifyLocal",
    "simplifyMaxScale",
    "labelsEnabled",
)
SEA_RGB = (214, 232, 244)  # the map canvas: a pale sea blue
DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
LAYOUT_TEMPLATE = "print_a3.qpt"  # written by scripts/make_styles.py (QGIS) next to the styles
LEGEND_ITEM = "65642"  # QgsLayoutItemRegistry::LayoutLegend
MAP_ITEM = "65639"  # QgsLayoutItemRegistry::LayoutMap


@dataclass(frozen=True)
class ProjectContext:
    """What the project takes from the warehouse: where it opens and the print's sources."""

    # lon/lat box the map opens on (the four cities); None: the whole province
    extent: tuple[float, float, float, float] | None = None
    # layer id → (department, finish time of the last successful load), the catalogue's lineage
    lineage: dict[str, tuple[str, datetime | None]] = field(default_factory=dict)


def project_context(conn: psycopg.Connection, layers: list[Layer]) -> ProjectContext:
    """The cities' extent (communes that belong to a city) and each public layer's lineage."""
    extent = None
    communes = next((layer for layer in layers if layer.id == "communes"), None)
    if communes is not None and communes.table:
        try:
            with conn.transaction():
                row = conn.execute(
                    sql.SQL(
                        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                        "(SELECT ST_Extent({geom}) AS e FROM {table} WHERE city IS NOT NULL) x"
                    ).format(
                        geom=sql.Identifier(communes.geometry_field),
                        table=sql.Identifier(*communes.table.split(".")),
                    )
                ).fetchone()
            if row and row[0] is not None:
                extent = tuple(row)
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
            pass  # the warehouse is not migrated yet: the project opens on the province
    lineage: dict[str, tuple[str, datetime | None]] = {}
    for layer in public_layers(layers):
        jobs = list(layer.metadata.get("etl_jobs", []))
        finished = None
        if jobs:
            # the same run the catalogue record's lineage names (sdi.api.records._lineage)
            try:
                with conn.transaction():
                    row = conn.execute(
                        "SELECT max(finished_at) FROM etl.runs WHERE job = ANY(%s) "
                        "AND status = 'succeeded' "
                        "AND coalesce((options->>'dry_run')::boolean, false) = false "
                        "AND rows_read IS NOT NULL",
                        (jobs,),
                    ).fetchone()
                finished = row[0] if row else None
            except psycopg.errors.UndefinedTable:
                pass  # no ETL run recorded yet: the print says "chưa nạp" (not loaded)
        lineage[layer.id] = (layer.metadata.get("department", ""), finished)
    return ProjectContext(extent=extent, lineage=lineage)


def public_layers(layers: list[Layer]) -> list[Layer]:
    """Feature layers an anonymous client sees (a departments list restricts even public)."""
    return [
        layer
        for layer in layers
        if layer.kind == "features" and layer.access == "public" and not layer.departments
    ]


def group_of(layer: Layer) -> str:
    names = dict(GROUPS)
    return names.get(layer.domain, names[None])


def title_vi(layer: Layer) -> str:
    return layer.i18n.get("vi", {}).get("title", layer.title)


def abstract(layer: Layer) -> str:
    """Vietnamese description first, then the English title and description."""
    vi = layer.i18n.get("vi", {}).get("description")
    english = f"{layer.title}. {layer.description}"
    return f"{' '.join(vi.split())}\n\n{english}" if vi else english


def visible(layer: Layer) -> bool:
    return bool(layer.qgis.get("visible", True))


def _detailed(style: Style | None) -> bool:
    """A layer drawn only when zoomed in (parcels): above the overview layers of its group
    (zoning), which then show between its features rather than wash over them."""
    return style is not None and style.qml_root.get("hasScaleBasedVisibilityFlag") == "1"


def layer_id(layer: Layer) -> str:
    # QGIS drops (and replaces by a random one) a layer id of 10 characters or fewer
    return f"sdi_oapif_{layer.id}"


def data_source(service_url: str, layer: Layer) -> str:
    # restrictToRequestBBOX: QGIS asks the server for the features of the map view only, so
    # a layer of a million parcels opens as fast as one of ten gauges.
    return f"url='{service_url}' typename='{layer.id}' restrictToRequestBBOX='1'"


def _srs(parent: ET.Element, tag: str, epsg: int) -> None:
    from pyproj import CRS

    # QGIS 3.22 ignores a bare authid (it wants its own srs.db id as well); the WKT with its
    # EPSG ID is read everywhere and carries the official VN-2000 datum shift.
    srs = ET.SubElement(ET.SubElement(parent, tag), "spatialrefsys")
    srs.append(_text("wkt", CRS.from_epsg(epsg).to_wkt("WKT2_2019")))
    srs.append(_text("authid", f"EPSG:{epsg}"))


def _text(tag: str, text: str, **attributes: str) -> ET.Element:
    element = ET.Element(tag, attributes)
    element.text = text
    return element


def _map_layer(layer: Layer, kind: str | None, style: Style | None, service_url: str) -> ET.Element:
    element = ET.Element("maplayer", {"type": "vector"})
    if kind:
        element.set("geometry", DISPLAY_GEOMETRY[kind])
    qml = style.qml_root if style else None
    if qml is not None:
        for name in QML_LAYER_ATTRIBUTES:
            if name in qml.attrib:
                element.set(name, qml.attrib[name])
    element.append(_text("id", layer_id(layer)))
    element.append(_text("datasource", data_source(service_url, layer)))
    keywords = ET.SubElement(element, "keywordList")
    for keyword in layer.keywords:
        keywords.append(_text("value", keyword))
    element.append(_text("layername", title_vi(layer)))
    _srs(element, "srs", 4326)
    element.append(_text("provider", "OAPIF", encoding="UTF-8"))
    element.append(_text("abstract", abstract(layer)))
    if qml is not None:
        element.extend(list(qml))  # renderer-v2, opacity, blending … as QGIS wrote them
    return element


def render_project(
    layers: list[Layer],
    kinds: dict[str, str | None],
    settings: Settings,
    service_url: str,
    context: ProjectContext | None = None,
) -> str:
    """The project XML. ``kinds``: layer id → geometry kind (``styles.geometry_kinds``);
    layers missing from it (their table is not in the warehouse yet) are left out.
    ``context`` (``project_context``): the opening extent and the print's sources."""
    from pyproj import Transformer

    context = context or ProjectContext()
    service_url = service_url.rstrip("/")
    directory = styles_dir(settings.layers_dir)
    root = ET.Element("qgis", {"projectname": settings.service_title, "version": "3.22.0"})
    root.append(_text("homePath", "", path=""))
    root.append(_text("title", settings.service_title))
    _srs(root, "projectCrs", settings.province_srid)
    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(tree, "customproperties")
    project_layers = ET.Element("projectlayers")
    chosen = [layer for layer in public_layers(layers) if layer.id in kinds]
    shown: list[tuple[Layer, str]] = []  # the layers switched on, top first: the legend
    for _domain, title in GROUPS:
        members = sorted(
            (layer for layer in chosen if group_of(layer) == title),
            key=lambda layer: (
                DRAW_ORDER[kinds[layer.id]],
                not _detailed(style_of(layer, kinds[layer.id], directory)),
                title_vi(layer),
            ),
        )
        if not members:
            continue
        group = ET.SubElement(
            tree, "layer-tree-group", {"name": title, "checked": "Qt::Checked", "expanded": "1"}
        )
        ET.SubElement(group, "customproperties")
        for layer in members:
            kind = kinds[layer.id]
            node = ET.SubElement(
                group,
                "layer-tree-layer",
                {
                    "id": layer_id(layer),
                    "name": title_vi(layer),
                    "source": data_source(service_url, layer),
                    "providerKey": "OAPIF",
                    "checked": "Qt::Checked" if visible(layer) else "Qt::Unchecked",
                    "expanded": "0",
                },
            )
            ET.SubElement(node, "customproperties")
            if visible(layer):
                shown.append((layer, data_source(service_url, layer)))
            project_layers.append(
                _map_layer(layer, kind, style_of(layer, kind, directory), service_url)
            )
    canvas = ET.SubElement(root, "mapcanvas", {"name": "theMapCanvas", "annotationsVisible": "1"})
    canvas.append(_text("units", "meters"))
    # opens on the four cities (else the whole province), in VN-2000 TM-3
    to_project = Transformer.from_crs(4326, settings.province_srid, always_xy=True)
    xmin, ymin, xmax, ymax = to_project.transform_bounds(
        *(context.extent or settings.province_extent)
    )
    extent = ET.SubElement(canvas, "extent")
    for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (xmin, ymin, xmax, ymax), strict=True):
        extent.append(_text(tag, f"{value:.1f}"))
    canvas.append(_text("rotation", "0"))
    _srs(canvas, "destinationsrs", settings.province_srid)
    root.append(project_layers)
    template = directory / LAYOUT_TEMPLATE
    if template.is_file():
        layouts = ET.SubElement(root, "Layouts")
        layouts.append(
            print_layout(template, shown, (xmin, ymin, xmax, ymax), context, settings, service_url)
        )
    properties = ET.SubElement(root, "properties")
    # without it QGIS ignores <projectCrs> (a project "without projection")
    srs_property = ET.SubElement(properties, "SpatialRefSys")
    srs_property.append(_text("ProjectionsEnabled", "1", type="int"))
    measure = ET.SubElement(properties, "Measure")
    # planar measures in the project CRS (VN-2000 TM-3), as the legal areas are computed
    measure.append(_text("Ellipsoid", "NONE", type="QString"))
    # the canvas is the sea: the communes are land only, so the coast and the bay read at once
    gui = ET.SubElement(properties, "Gui")
    for part, value in zip(("Red", "Green", "Blue"), SEA_RGB, strict=True):
        gui.append(_text(f"CanvasColor{part}Part", str(value), type="int"))
    ET.indent(root)
    return DOCTYPE + ET.tostring(root, encoding="unicode") + "\n"


def _nice_interval(span: float) -> float:
    """A round grid interval (1, 2 or 5 × 10^n metres) giving about five lines across."""
    step = span / 5
    magnitude = 10 ** len(str(int(step))) / 10 if step >= 1 else 1
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= step)


def _fit(extent: tuple[float, ...], width: float, height: float) -> tuple[float, ...]:
    """The extent widened in one direction to the map item's proportions, same centre."""
    xmin, ymin, xmax, ymax = extent
    cx, cy, w, h = (xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin
    if w / h < width / height:
        w = h * width / height
    else:
        h = w * height / width
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _sources_text(shown: list[Layer], context: ProjectContext, service_url: str) -> str:
    """The print's sources: one line per department (its layers shown, its latest load), so
    that twenty layers fit the box under the legend."""
    departments: dict[str, tuple[list[str], list[datetime], bool]] = {}
    for layer in shown:
        department, finished = context.lineage.get(layer.id, ("", None))
        # "Department of Construction (derived from …)": the department that answers for it
        name = re.sub(r"\s*\(.*\)\s*$", "", department or "") or "SDI"
        titles, dates, loaded_by_etl = departments.setdefault(name, ([], [], False))
        titles.append(title_vi(layer))
        if finished:
            dates.append(finished)
        if layer.metadata.get("etl_jobs"):
            departments[name] = (titles, dates, True)
    lines = ["Nguồn dữ liệu (đơn vị: lớp dữ liệu — lần cập nhật cuối):"]
    for name, (titles, dates, loaded_by_etl) in departments.items():
        if dates:
            when = max(dates).strftime("%d/%m/%Y")
        else:  # no load yet, or no ETL job at all (reports posted to the service)
            when = "chưa nạp" if loaded_by_etl else "cập nhật trực tiếp"
        lines.append(f"• {name}: {', '.join(titles)} — {when}")
    lines.append(f"Dịch vụ OGC API: {service_url}")
    return "\n".join(lines)


# DejaVu Sans, the print's font: its mean advance over Vietnamese text, and its line height,
# in ems (measured on QGIS's rendering of the sources); 1 pt = 0.3528 mm
_CHAR_EM, _LINE_EM, _PT_MM = 0.56, 1.2, 0.3528
SOURCE_SIZES = (6.5, 6.0, 5.5, 5.0)  # pt, largest first: the first that fits is used


def wrapped_lines(text: str, width_mm: float, size_pt: float) -> int:
    """How many lines ``text`` takes in a label ``width_mm`` wide at ``size_pt`` (estimated).

    >>> wrapped_lines("a b c", 96, 6.5), wrapped_lines("word " * 40, 96, 6.5)
    (1, 3)
    """
    chars = max(1, int(width_mm / (size_pt * _PT_MM * _CHAR_EM)))
    return sum(len(textwrap.wrap(line, chars)) or 1 for line in text.splitlines())


def fitting_size(text: str, width_mm: float, height_mm: float) -> float:
    """The largest of :data:`SOURCE_SIZES` at which ``text`` fits the box (else the smallest).

    >>> fitting_size("one line", 96, 63), fitting_size("\\n".join(["line"] * 26), 96, 63)
    (6.5, 5.5)
    """
    for size in SOURCE_SIZES:
        if wrapped_lines(text, width_mm, size) * size * _PT_MM * _LINE_EM <= height_mm:
            return size
    return SOURCE_SIZES[-1]


def print_layout(
    template: Path,
    shown: list[tuple[Layer, str]],
    extent: tuple[float, ...],
    context: ProjectContext,
    settings: Settings,
    service_url: str,
) -> ET.Element:
    """The A3 print layout: the QGIS-written template with the title, the sources and their
    dates, the map's extent (project CRS) and grid interval, and a legend of ``shown``
    (layer, data source), the layers switched on, top first."""
    layout = ET.parse(template).getroot()
    texts = {
        "{title}": "Bản đồ hiện trạng và quy hoạch đô thị",
        "{subtitle}": (
            "Hạ tầng dữ liệu không gian đô thị — hệ tọa độ VN-2000 / TM-3 "
            f"(EPSG:{settings.province_srid}) — lập ngày {date.today():%d/%m/%Y}"
        ),
        "{sources}": _sources_text([layer for layer, _ in shown], context, service_url),
    }
    for item in layout.iter("LayoutItem"):
        label = item.get("labelText")
        if label is not None and label in texts:
            item.set("labelText", texts[label])
        if label == "{sources}":  # the font that fits its box (the template's: the largest)
            width, height = (float(v) for v in item.get("size", "0,0").split(",")[:2])
            size = fitting_size(texts[label], width, height)
            for font in item.iter("LabelFont"):
                family, _, rest = font.get("description", "").partition(",")
                font.set("description", f"{family},{size:g},{rest.partition(',')[2]}")
        if item.get("type") == MAP_ITEM:
            width, height = (float(v) for v in item.get("size", "0,0").split(",")[:2])
            fitted = _fit(extent, width, height)
            box = item.find("Extent")
            assert box is not None, "the print template's map has an extent"
            for name, value in zip(("xmin", "ymin", "xmax", "ymax"), fitted, strict=True):
                box.set(name, f"{value:.1f}")
            interval = _nice_interval(fitted[2] - fitted[0])
            for grid in item.iter("ComposerMapGrid"):
                grid.set("intervalX", f"{interval:g}")
                grid.set("intervalY", f"{interval:g}")
        if item.get("type") == LEGEND_ITEM:
            tree = item.find("layer-tree-group")
            assert tree is not None, "the print template's legend has a layer tree"
            for layer, source in shown:
                node = ET.SubElement(
                    tree,
                    "layer-tree-layer",
                    {
                        "id": layer_id(layer),
                        "name": title_vi(layer),
                        "source": source,
                        "providerKey": "OAPIF",
                        "checked": "Qt::Checked",
                        "expanded": "1",
                    },
                )
                ET.SubElement(node, "customproperties")
    return layout


def write_project(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
