"""Run by Debian's python3 (which has the qgis module), not by the project's venv.

Usage: QT_QPA_PLATFORM=offscreen python3 qgis_project_probe.py PROJECT [CONNINFO TABLE…]

Opens the QGIS project headless and prints JSON: the project's CRS, its groups and, per map
layer, validity, provider, CRS, renderer (type, attribute, category count), the scale
visibility and one feature read from the layer's extent, with its first vertex transformed
by QGIS into the project's CRS. With CONNINFO (a libpq connection
string) and schema.table names, also opens each table as a PostGIS layer the way a planner
does (no style given) and reports the renderer QGIS applied from the layer_styles table.
"""

import json
import sys

from qgis.core import (
    QgsApplication,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsLayerTreeGroup,
    QgsProject,
    QgsVectorLayer,
)


def renderer(layer):
    r = layer.renderer()
    if r is None:
        return {"type": None}
    info = {"type": r.type()}
    if r.type() == "categorizedSymbol":
        info["attribute"] = r.classAttribute()
        info["categories"] = len(r.categories())
    return info


def in_project_crs(layer, feature):
    transform = QgsCoordinateTransform(
        layer.crs(), QgsProject.instance().crs(), QgsProject.instance()
    )
    point = transform.transform(
        feature.geometry().vertexAt(0).x(), feature.geometry().vertexAt(0).y()
    )
    return [point.x(), point.y()]


def describe(layer):
    result = {"valid": layer.isValid(), "name": layer.name(), "provider": layer.providerType()}
    result["abstract"] = layer.abstract()
    labeling = layer.labeling() if layer.labelsEnabled() else None
    result["labels"] = labeling.settings().fieldName if labeling is not None else None
    if not layer.isValid():
        return result
    request = QgsFeatureRequest().setFilterRect(layer.extent()).setLimit(1)
    features = list(layer.getFeatures(request))
    result.update(
        crs=layer.crs().authid(),
        renderer=renderer(layer),
        min_scale=layer.minimumScale() if layer.hasScaleBasedVisibility() else None,
        feature=features[0].attributes() if features else None,
        geometry=features[0].geometry().asWkt(3)[:40] if features else None,
        projected=in_project_crs(layer, features[0]) if features else None,
    )
    return result


QgsApplication.setPrefixPath("/usr", True)
qgis = QgsApplication([], True)  # the OAPIF provider needs the GUI-enabled application
qgis.initQgis()
project = QgsProject.instance()
out = {"read": project.read(sys.argv[1])}
out["crs"] = project.crs().authid()
out["ellipsoid"] = project.ellipsoid()
out["groups"] = {
    group.name(): [node.layerId() for node in group.findLayers()]
    for group in project.layerTreeRoot().children()
    if isinstance(group, QgsLayerTreeGroup)
}
out["checked"] = {node.layerId(): node.isVisible() for node in project.layerTreeRoot().findLayers()}
out["layers"] = {lid: describe(layer) for lid, layer in project.mapLayers().items()}
if len(sys.argv) > 2:
    conninfo, tables = sys.argv[2], sys.argv[3:]
    out["postgis"] = {}
    for name in tables:
        schema, table = name.split(".")
        uri = f'{conninfo} key=\'id\' table="{schema}"."{table}" (geom)'
        out["postgis"][name] = describe(QgsVectorLayer(uri, table, "postgres"))
print(json.dumps(out, default=str))
