"""Write layers/styles/<name>.qml and .sld from layers/styles/styles.yml, with QGIS itself.

Run by Debian's python3 (it has the qgis module), not by the project's venv:

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 qgis/make_styles.py

QGIS writes the files so they are exactly what QGIS reads back (QGIS 3.22 of Debian 12; newer
QGIS reads them too). The output is committed: `sdi publish` only copies it into the
warehouse's layer_styles table and the QGIS project, so publishing never needs QGIS.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# Qt orders XML attributes by a randomly seeded hash: a fixed seed makes regenerating an
# unchanged palette give byte-identical files (clean diffs). Must be set before Qt loads.
os.environ["QT_HASH_SEED"] = "0"

import yaml
from qgis.core import (
    QgsApplication,
    QgsCategorizedSymbolRenderer,
    QgsGraduatedSymbolRenderer,
    QgsMapLayer,
    QgsRendererCategory,
    QgsRendererRange,
    QgsSingleSymbolRenderer,
    QgsSymbol,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtGui import QColor

ROOT = Path(__file__).resolve().parent.parent
STYLES = ROOT / "layers" / "styles"
GEOMETRY = {
    "point": ("Point", QgsWkbTypes.PointGeometry),
    "line": ("MultiLineString", QgsWkbTypes.LineGeometry),
    "polygon": ("MultiPolygon", QgsWkbTypes.PolygonGeometry),
}


def land_use_groups() -> dict[str, tuple[str, ...]]:
    """The groups the warnings count parcels by, from the one place they are defined.

    sdi/hazard/model.py needs only the standard library, so it is loaded by path: the
    system python has no sdi package (nor its dependencies) installed.
    """
    spec = importlib.util.spec_from_file_location("model", ROOT / "sdi" / "hazard" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.LAND_USE_GROUPS)


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


def write(name: str, spec: dict, palette: dict) -> None:
    kind = spec["geometry"]
    layer = QgsVectorLayer(f"{GEOMETRY[kind][0]}?crs=EPSG:4326", name, "memory")
    layer.setRenderer(renderer(spec, palette))
    layer.setOpacity(spec.get("opacity", 1.0))
    if "max_scale" in spec:
        # QGIS's "minimum scale" is the most zoomed-out scale at which the layer is drawn
        layer.setScaleBasedVisibility(True)
        layer.setMinimumScale(spec["max_scale"])
    categories = QgsMapLayer.Symbology | QgsMapLayer.Rendering
    message, ok = layer.saveNamedStyle(str(STYLES / f"{name}.qml"), categories)
    if not ok:
        sys.exit(f"{name}.qml: {message}")
    message, ok = layer.saveSldStyle(str(STYLES / f"{name}.sld"))
    if not ok:
        sys.exit(f"{name}.sld: {message}")


def main() -> None:
    palette = yaml.safe_load((STYLES / "styles.yml").read_text(encoding="utf-8"))
    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    for kind, spec in palette["defaults"].items():
        write(f"default_{kind}", {"geometry": kind, "single": spec["color"]}, palette)
    for name, spec in palette["styles"].items():
        write(name, spec, palette)
    print(f"{len(palette['defaults']) + len(palette['styles'])} styles written to {STYLES}")


if __name__ == "__main__":
    main()
