"""Write layers/styles/<name>.qml and .sld from layers/styles/styles.yml, with QGIS itself,
and the ready project's print layout template, layers/styles/print_a3.qpt.

Run by Debian's python3 (it has the qgis module), not by the project's venv:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/make_styles.py

QGIS writes the files so they are exactly what QGIS reads back (QGIS 3.22 of Debian 12; newer
QGIS reads them too). The output is committed: `sdi publish` only copies it into the
warehouse's layer_styles table and the QGIS project, so publishing never needs QGIS.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

# Qt orders XML attributes by a randomly seeded hash: a fixed seed makes regenerating an
# unchanged palette give byte-identical files (clean diffs). Must be set before Qt loads.
os.environ["QT_HASH_SEED"] = "0"

import yaml
from qgis.core import (
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsGraduatedSymbolRenderer,
    QgsLayoutItemLabel,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsLayoutItemMapGrid,
    QgsLayoutItemPage,
    QgsLayoutItemPicture,
    QgsLayoutItemScaleBar,
    QgsLayoutPoint,
    QgsLayoutSize,
    QgsLegendStyle,
    QgsMapLayer,
    QgsPalLayerSettings,
    QgsPrintLayout,
    QgsProject,
    QgsReadWriteContext,
    QgsRendererCategory,
    QgsRendererRange,
    QgsScaleBarSettings,
    QgsSingleSymbolRenderer,
    QgsSymbol,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsUnitTypes,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor, QFont

ROOT = Path(__file__).resolve().parent.parent
STYLES = ROOT / "layers" / "styles"
GEOMETRY = {
    "point": ("Point", QgsWkbTypes.PointGeometry),
    "line": ("MultiLineString", QgsWkbTypes.LineGeometry),
    "polygon": ("MultiPolygon", QgsWkbTypes.PolygonGeometry),
}


def land_use_groups() -> dict[str, tuple[str, ...]]:
    """The groups the warnings and indicators count parcels by, from the one place they are
    defined: the land-use code list (read with PyYAML, which the system python has)."""
    import yaml

    codes = yaml.safe_load((ROOT / "etl" / "codes" / "land_use.yml").read_text(encoding="utf-8"))
    return {group: tuple(members) for group, members in codes["groups"].items()}


def group_expression(field: str, groups: dict[str, tuple[str, ...]]) -> str:
    whens = " ".join(
        f"WHEN \"{field}\" IN ({', '.join(repr(c) for c in codes)}) THEN '{group}'"
        for group, codes in groups.items()
    )
    return f"CASE {whens} ELSE 'other' END"


def symbol(kind: str, colour: str, spec: dict) -> QgsSymbol:
    sym = QgsSymbol.defaultSymbol(GEOMETRY[kind][1])
    fill = QColor(colour)
    sym.setColor(fill)
    layer = sym.symbolLayer(0)
    if kind == "point":
        sym.setSize(spec.get("size", 2.0))
        layer.setStrokeColor(fill.darker(160))
        layer.setStrokeWidth(0.2)
    elif kind == "line":
        sym.setWidth(spec.get("width", 0.5))
    else:
        layer.setStrokeColor(QColor(spec["outline"]) if "outline" in spec else fill.darker(150))
        layer.setStrokeWidth(spec.get("outline_width", 0.26))
        if spec.get("no_fill"):
            layer.setBrushStyle(Qt.NoBrush)
    return sym


def renderer(spec: dict, palette: dict):
    kind = spec["geometry"]
    if "single" in spec:
        return QgsSingleSymbolRenderer(symbol(kind, spec["single"], spec))
    if "ranges" in spec:  # graduated: lower < value <= upper (the first range includes lower)
        ranges = [
            QgsRendererRange(lower, upper, symbol(kind, colour, spec), str(label))
            for lower, upper, label, colour in spec["ranges"]
        ]
        return QgsGraduatedSymbolRenderer(spec["field"], ranges)
    if "land_use_groups" in spec:
        colours = palette["land_use_group_colors"]
        groups = land_use_groups()
        missing = set(groups) - set(colours)
        if missing:
            sys.exit(f"styles.yml: land_use_group_colors lacks {sorted(missing)}")
        attr = group_expression(spec["land_use_groups"], groups)
        rows = [(g, label, colour) for g, (label, colour) in colours.items()]
    else:
        attr, rows = spec["field"], spec["categories"]
    categories = [
        QgsRendererCategory(value, symbol(kind, colour, spec), str(label))
        for value, label, colour in rows
    ]
    return QgsCategorizedSymbolRenderer(attr, categories)


def labeling(spec: dict) -> QgsVectorLayerSimpleLabeling:
    """Labels of a field, white-haloed so they read over any fill, only when zoomed in
    beyond 1:max_scale (parcel numbers are unreadable below the street scale)."""
    text = QgsTextFormat()
    text.setFont(QFont("DejaVu Sans"))  # has the Vietnamese letters; installed with QGIS
    text.setSize(spec.get("size", 8))
    text.setColor(QColor(spec.get("color", "#262626")))
    halo = QgsTextBufferSettings()
    halo.setEnabled(True)
    halo.setSize(0.8)
    halo.setColor(QColor("white"))
    text.setBuffer(halo)
    settings = QgsPalLayerSettings()
    settings.fieldName = spec["field"]
    settings.setFormat(text)
    settings.placement = QgsPalLayerSettings.OverPoint
    settings.scaleVisibility = True
    settings.minimumScale = spec["max_scale"]  # most zoomed-out scale drawn
    settings.maximumScale = 0
    return QgsVectorLayerSimpleLabeling(settings)


def write(name: str, spec: dict, palette: dict) -> None:
    kind = spec["geometry"]
    layer = QgsVectorLayer(f"{GEOMETRY[kind][0]}?crs=EPSG:4326", name, "memory")
    layer.setRenderer(renderer(spec, palette))
    layer.setOpacity(spec.get("opacity", 1.0))
    if "max_scale" in spec:
        # QGIS's "minimum scale" is the most zoomed-out scale at which the layer is drawn
        layer.setScaleBasedVisibility(True)
        layer.setMinimumScale(spec["max_scale"])
    if "labels" in spec:
        layer.setLabeling(labeling(spec["labels"]))
        layer.setLabelsEnabled(True)
    categories = QgsMapLayer.Symbology | QgsMapLayer.Rendering | QgsMapLayer.Labeling
    message, ok = layer.saveNamedStyle(str(STYLES / f"{name}.qml"), categories)
    if not ok:
        sys.exit(f"{name}.qml: {message}")
    message, ok = layer.saveSldStyle(str(STYLES / f"{name}.sld"))
    if not ok:
        sys.exit(f"{name}.sld: {message}")


def text_format(size: float, bold: bool = False) -> QgsTextFormat:
    font = QFont("DejaVu Sans")
    font.setBold(bold)
    text = QgsTextFormat()
    text.setFont(font)
    text.setSize(size)
    return text


def font(size: float, bold: bool = False) -> QFont:
    value = QFont("DejaVu Sans")
    value.setPointSizeF(size)
    value.setBold(bold)
    return value


def place(item, x: float, y: float, width: float, height: float) -> None:
    item.attemptMove(QgsLayoutPoint(x, y))
    item.attemptResize(QgsLayoutSize(width, height))


def write_layout() -> None:
    """The A3 landscape print layout of the ready project, as a QGIS template (.qpt).

    sdi.publish.qgis_project fills it when writing the project: the title and sources texts
    (items "title", "subtitle", "sources"), the map's extent and grid interval, the legend's
    layers (the visible ones). Everything else (fonts, frame, grid, scale bar, north arrow) is
    as QGIS wrote it here.
    """
    # the province's VN-2000 / TM-3, the ready project's CRS (the map item follows it)
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem("EPSG:5899"))
    layout = QgsPrintLayout(QgsProject.instance())
    layout.initializeDefaults()
    layout.setName("Bản đồ A3")
    layout.pageCollection().page(0).setPageSize("A3", QgsLayoutItemPage.Landscape)

    title = QgsLayoutItemLabel(layout)
    title.setId("title")
    title.setText("{title}")
    title.setFont(font(20, bold=True))
    place(title, 10, 6, 400, 11)
    title.setHAlign(Qt.AlignLeft)  # QGIS 3.22 justifies by default
    layout.addLayoutItem(title)
    subtitle = QgsLayoutItemLabel(layout)
    subtitle.setId("subtitle")
    subtitle.setText("{subtitle}")
    subtitle.setFont(font(10))
    place(subtitle, 10, 17, 400, 6)
    subtitle.setHAlign(Qt.AlignLeft)  # QGIS 3.22 justifies by default
    layout.addLayoutItem(subtitle)

    # the map, framed, with a VN-2000 / TM-3 grid annotated in metres outside the frame
    map_item = QgsLayoutItemMap(layout)
    map_item.setId("map")
    place(map_item, 16, 28, 290, 248)
    map_item.setFrameEnabled(True)
    layout.addLayoutItem(map_item)
    grid = QgsLayoutItemMapGrid("Lưới tọa độ VN-2000 / TM-3", map_item)
    grid.setIntervalX(10000)
    grid.setIntervalY(10000)
    grid.setStyle(QgsLayoutItemMapGrid.Solid)
    grid.setGridLineColor(QColor(120, 120, 120, 160))
    grid.setGridLineWidth(0.1)
    grid.setFrameStyle(QgsLayoutItemMapGrid.Zebra)
    grid.setFrameWidth(1.5)
    grid.setAnnotationEnabled(True)
    grid.setAnnotationFormat(QgsLayoutItemMapGrid.Decimal)
    grid.setAnnotationPrecision(0)
    grid.setAnnotationTextFormat(text_format(6))
    for side in (QgsLayoutItemMapGrid.Left, QgsLayoutItemMapGrid.Right):
        grid.setAnnotationDirection(QgsLayoutItemMapGrid.Vertical, side)
    for side in (
        QgsLayoutItemMapGrid.Left,
        QgsLayoutItemMapGrid.Right,
        QgsLayoutItemMapGrid.Top,
        QgsLayoutItemMapGrid.Bottom,
    ):
        grid.setAnnotationPosition(QgsLayoutItemMapGrid.OutsideMapFrame, side)
    map_item.grids().addGrid(grid)

    north = QgsLayoutItemPicture(layout)
    north.setId("north")
    north.setPicturePath(":/images/north_arrows/layout_default_north_arrow.svg")
    north.setLinkedMap(map_item)
    north.setNorthMode(QgsLayoutItemPicture.GridNorth)
    north.setBackgroundEnabled(True)
    place(north, 290, 31, 12, 16)
    layout.addLayoutItem(north)

    scale_bar = QgsLayoutItemScaleBar(layout)
    scale_bar.setId("scalebar")
    scale_bar.setLinkedMap(map_item)
    scale_bar.applyDefaultSettings()
    scale_bar.setStyle("Single Box")
    scale_bar.setUnits(QgsUnitTypes.DistanceKilometers)
    scale_bar.setUnitLabel("km")
    scale_bar.setNumberOfSegments(4)
    scale_bar.setNumberOfSegmentsLeft(0)
    scale_bar.setSegmentSizeMode(QgsScaleBarSettings.SegmentSizeFitWidth)
    scale_bar.setMinimumBarWidth(50)
    scale_bar.setMaximumBarWidth(90)
    scale_bar.setTextFormat(text_format(7))
    scale_bar.setBackgroundEnabled(True)
    place(scale_bar, 19, 262, 90, 11)
    layout.addLayoutItem(scale_bar)

    legend = QgsLayoutItemLegend(layout)
    legend.setId("legend")
    legend.setTitle("Chú giải")
    legend.setLinkedMap(map_item)
    legend.setAutoUpdateModel(False)
    legend.setLegendFilterByMapEnabled(True)  # only what the map shows
    legend.setResizeToContents(False)
    legend.setColumnCount(1)
    legend.setSplitLayer(True)
    legend.setSymbolWidth(6)
    legend.setSymbolHeight(3.5)
    legend.setStyleFont(QgsLegendStyle.Title, font(11, bold=True))
    legend.setStyleFont(QgsLegendStyle.Group, font(8, bold=True))
    legend.setStyleFont(QgsLegendStyle.Subgroup, font(8, bold=True))
    legend.setStyleFont(QgsLegendStyle.SymbolLabel, font(7))
    legend.model().rootGroup().removeAllChildren()
    place(legend, 314, 28, 96, 196)
    layout.addLayoutItem(legend)

    sources = QgsLayoutItemLabel(layout)
    sources.setId("sources")
    sources.setText("{sources}")
    sources.setFont(font(6.5))
    place(sources, 314, 228, 96, 63)
    sources.setHAlign(Qt.AlignLeft)  # QGIS 3.22 justifies by default
    layout.addLayoutItem(sources)

    path = STYLES / "print_a3.qpt"
    layout.saveAsTemplate(str(path), QgsReadWriteContext())
    # QGIS gives every item a random uuid: numbered ones instead, in order of appearance, so
    # regenerating an unchanged layout gives the same file
    text = path.read_text(encoding="utf-8")
    uuids = dict.fromkeys(re.findall(r"\{[0-9a-f]{8}-[0-9a-f-]{27}\}", text))
    for number, uuid in enumerate(uuids, 1):
        text = text.replace(uuid, f"{{00000000-0000-4000-8000-{number:012d}}}")
    path.write_text(text, encoding="utf-8")


def main() -> None:
    palette = yaml.safe_load((STYLES / "styles.yml").read_text(encoding="utf-8"))
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    for kind, spec in palette["defaults"].items():
        write(f"default_{kind}", {"geometry": kind, "single": spec["color"]}, palette)
    for name, spec in palette["styles"].items():
        write(name, spec, palette)
    write_layout()
    count = len(palette["defaults"]) + len(palette["styles"])
    print(f"{count} styles and print_a3.qpt written to {STYLES}")


if __name__ == "__main__":
    main()
