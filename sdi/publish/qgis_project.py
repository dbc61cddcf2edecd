"""A ready QGIS project (``.qgs``) of the service's public OGC API collections, styled.

``sdi publish --qgis-project PATH [--service-url URL]`` writes it. Every public feature layer
in ``layers/`` becomes an OGC API – Features layer (QGIS's ``OAPIF`` provider) of the
service, with its committed QGIS style (``layers/styles/<style>.qml``, or the plain default of
its geometry type), in a group chosen by the layer's ``domain``: a layer added later appears
in its group without any change here. Internal layers (an API key is needed) are left out.

The project's CRS is the province's VN-2000 TM-3 and distances and areas are measured in it
(no ellipsoid), like the legal areas (``area_m2``) the warehouse computes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from sdi.layers import Layer
from sdi.publish.styles import Style, style_of, styles_dir
from sdi.settings import Settings

# Groups from top to bottom of the layers panel (so live operations draw above the base
# layers), by the layer's `domain`; layers without one go last, in "Other".
GROUPS = (
    ("operations", "Operations"),
    ("hazard", "Hazard"),
    ("planning", "Planning"),
    ("construction", "Construction"),
    ("utility", "Utility"),
    ("land", "Land"),
    ("admin", "Administrative units"),
    (None, "Other"),
)
# QgsWkbTypes::geometryDisplayString, as QGIS writes <maplayer geometry="…">
DISPLAY_GEOMETRY = {"point": "Point", "line": "Line", "polygon": "Polygon"}
# Points above lines above polygons within a group, so nothing hides the small symbols.
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
)
DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"


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
    element.append(_text("layername", layer.title))
    _srs(element, "srs", 4326)
    element.append(_text("provider", "OAPIF", encoding="UTF-8"))
    element.append(_text("abstract", layer.description))
    if qml is not None:
        element.extend(list(qml))  # renderer-v2, opacity, blending … as QGIS wrote them
    return element


def render_project(
    layers: list[Layer],
    kinds: dict[str, str | None],
    settings: Settings,
    service_url: str,
) -> str:
    """The project XML. ``kinds``: layer id → geometry kind (``styles.geometry_kinds``);
    layers missing from it (their table is not in the warehouse yet) are left out."""
    from pyproj import Transformer

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
    for _domain, title in GROUPS:
        members = sorted(
            (layer for layer in chosen if group_of(layer) == title),
            key=lambda layer: (DRAW_ORDER[kinds[layer.id]], layer.title),
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
                    "name": layer.title,
                    "source": data_source(service_url, layer),
                    "providerKey": "OAPIF",
                    "checked": "Qt::Checked",
                    "expanded": "0",
                },
            )
            ET.SubElement(node, "customproperties")
            project_layers.append(
                _map_layer(layer, kind, style_of(layer, kind, directory), service_url)
            )
    canvas = ET.SubElement(root, "mapcanvas", {"name": "theMapCanvas", "annotationsVisible": "1"})
    canvas.append(_text("units", "meters"))
    # opens on the whole province, in VN-2000 TM-3
    to_project = Transformer.from_crs(4326, settings.province_srid, always_xy=True)
    xmin, ymin, xmax, ymax = to_project.transform_bounds(*settings.province_extent)
    extent = ET.SubElement(canvas, "extent")
    for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), (xmin, ymin, xmax, ymax), strict=True):
        extent.append(_text(tag, f"{value:.1f}"))
    canvas.append(_text("rotation", "0"))
    _srs(canvas, "destinationsrs", settings.province_srid)
    root.append(project_layers)
    properties = ET.SubElement(root, "properties")
    # without it QGIS ignores <projectCrs> (a project "without projection")
    srs_property = ET.SubElement(properties, "SpatialRefSys")
    srs_property.append(_text("ProjectionsEnabled", "1", type="int"))
    measure = ET.SubElement(properties, "Measure")
    # planar measures in the project CRS (VN-2000 TM-3), as the legal areas are computed
    measure.append(_text("Ellipsoid", "NONE", type="QString"))
    ET.indent(root)
    return DOCTYPE + ET.tostring(root, encoding="unicode") + "\n"


def write_project(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
