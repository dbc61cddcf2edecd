"""Run by Debian's python3 (which has the qgis module), not by the project's venv.

Usage: QT_QPA_PLATFORM=offscreen python3 qgis_render_probe.py PROJECT OUTDIR SCALES_JSON

Renders the QGIS project headless as a planner sees it: at each named extent of SCALES_JSON
({"province": [xmin, ymin, xmax, ymax], …}, in the project's CRS) the layers checked in the
layer tree are drawn together into OUTDIR/<name>.png, timed. Then each of those layers that is
drawn at that scale is checked alone: valid, how many features it has in the extent, and the
fraction of the map its own render paints opaque (a fill that would hide everything below).
The layers switched off (the derived ones) are drawn together at the first extent into
OUTDIR/<name>-off.png, for a person to look at their styles. With a print layout in the
project, it is exported to OUTDIR/<layout>.pdf and .png.
Prints JSON.
"""

import json
import sys
import time
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsLayoutExporter,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QRectF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QFontMetricsF, QGuiApplication, QImage

WIDTH, HEIGHT = 1600, 1131  # A3 landscape proportions
CHECK_WIDTH, CHECK_HEIGHT = 400, 283  # the per-layer renders: coverage needs no detail
OPAQUE = 250  # alpha from which a pixel hides what is below it


def labels(layout):
    return [item for item in layout.items() if type(item).__name__ == "QgsLayoutItemLabel"]


def label_fit(item) -> dict:
    """A label's box and the height its text takes there, word-wrapped (mm), by Qt's metrics
    of the label's font: a text taller than its box is cut off in the print."""
    dpi = QGuiApplication.primaryScreen().logicalDotsPerInch()
    size = item.sizeWithUnits()
    metrics = QFontMetricsF(item.font())
    bound = metrics.boundingRect(
        QRectF(0, 0, size.width() / 25.4 * dpi, 1e6),
        int(Qt.TextWordWrap | Qt.AlignLeft),
        item.currentText(),
    )
    return {
        "width_mm": size.width(),
        "height_mm": size.height(),
        "text_height_mm": bound.height() * 25.4 / dpi,
        "font_pt": item.font().pointSizeF(),
        "lines": item.currentText().count("\n") + 1,
    }


def map_settings(project, extent, layers, size):
    settings = QgsMapSettings()
    settings.setDestinationCrs(project.crs())
    settings.setTransformContext(project.transformContext())
    settings.setOutputSize(size)
    settings.setBackgroundColor(QColor(255, 255, 255, 0))
    settings.setLayers(layers)
    settings.setExtent(extent)
    return settings


def render(settings):
    started = time.monotonic()
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    errors = [f"{e.layerID}: {e.message}" for e in job.errors()]
    return job.renderedImage(), time.monotonic() - started, errors


def opaque_fraction(image):
    image = image.convertToFormat(QImage.Format_ARGB32)
    data = image.constBits().asstring(image.sizeInBytes())
    alphas = data[3::4]  # ARGB32 is B, G, R, A in memory on little-endian machines
    return sum(1 for a in alphas if a >= OPAQUE) / len(alphas)


def features_in(layer, project, extent):
    transform = QgsCoordinateTransform(project.crs(), layer.crs(), project)
    request = QgsFeatureRequest().setFilterRect(transform.transformBoundingBox(extent))
    request.setNoAttributes().setLimit(1000)
    return sum(1 for _ in layer.getFeatures(request))


QgsApplication.setPrefixPath("/usr", True)
qgis = QgsApplication([], True)  # the OAPIF provider needs the GUI-enabled application
qgis.initQgis()
project = QgsProject.instance()
out = {"read": project.read(sys.argv[1]), "scales": {}}
outdir = Path(sys.argv[2])
outdir.mkdir(parents=True, exist_ok=True)
root = project.layerTreeRoot()
# the layer tree's order is the drawing order (top first), as the map canvas draws it
checked = [node.layer() for node in root.findLayers() if node.isVisible() and node.layer()]
for name, box in json.loads(sys.argv[3]).items():
    extent = QgsRectangle(*box)
    settings = map_settings(project, extent, checked, QSize(WIDTH, HEIGHT))
    image, seconds, errors = render(settings)
    path = outdir / f"{name}.png"
    image.save(str(path))
    scale = settings.scale()
    layers = {}
    for layer in checked:
        drawn = layer.isInScaleRange(scale)
        info = {"name": layer.name(), "valid": layer.isValid(), "drawn": drawn}
        if layer.isValid() and drawn and isinstance(layer, QgsVectorLayer):
            info["features"] = features_in(layer, project, extent)
            alone = map_settings(project, extent, [layer], QSize(CHECK_WIDTH, CHECK_HEIGHT))
            info["opaque_fraction"] = round(opaque_fraction(render(alone)[0]), 4)
            info["geometry"] = layer.geometryType()
        layers[layer.id()] = info
    out["scales"][name] = {
        "png": str(path),
        "seconds": round(seconds, 2),
        "scale": round(scale),
        "errors": errors,
        "layers": layers,
    }
unchecked = [node.layer() for node in root.findLayers() if not node.isVisible() and node.layer()]
if unchecked:
    name, box = next(iter(json.loads(sys.argv[3]).items()))
    extent = QgsRectangle(*box)
    image, seconds, errors = render(map_settings(project, extent, unchecked, QSize(WIDTH, HEIGHT)))
    image.save(str(outdir / f"{name}-off.png"))
    out["off"] = {
        "png": str(outdir / f"{name}-off.png"),
        "errors": errors,
        "layers": {
            layer.id(): {"name": layer.name(), "valid": layer.isValid()} for layer in unchecked
        },
    }
out["layouts"] = {}
for layout in project.layoutManager().layouts():
    exporter = QgsLayoutExporter(layout)
    stem = outdir / layout.name().replace(" ", "_").replace("/", "_")
    started = time.monotonic()
    pdf = exporter.exportToPdf(f"{stem}.pdf", QgsLayoutExporter.PdfExportSettings())
    png_settings = QgsLayoutExporter.ImageExportSettings()
    png_settings.dpi = 100
    png = exporter.exportToImage(f"{stem}.png", png_settings)
    out["layouts"][layout.name()] = {
        "pdf": f"{stem}.pdf" if pdf == QgsLayoutExporter.Success else None,
        "png": f"{stem}.png" if png == QgsLayoutExporter.Success else None,
        "seconds": round(time.monotonic() - started, 2),
        "pages": layout.pageCollection().pageCount(),
        "items": sorted({type(item).__name__ for item in layout.items()}),
        "labels": {item.id(): label_fit(item) for item in labels(layout)},
    }
print(json.dumps(out, default=str))
