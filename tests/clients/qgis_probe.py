"""Run by Debian's python3 (which has the qgis module), not by the project's venv.

Usage: QT_QPA_PLATFORM=offscreen python3 qgis_probe.py URL COLLECTION [minx miny maxx maxy]
Loads the collection as an OGC API Features layer in a headless QGIS and prints JSON:
validity, the title and abstract QGIS shows for it (the provider's layer metadata, from the
collection's description), CRS, fields, and the features intersecting the bbox.
"""

import json
import sys

from qgis.core import QgsApplication, QgsFeatureRequest, QgsRectangle, QgsVectorLayer

url, collection = sys.argv[1], sys.argv[2]
bbox = [float(v) for v in sys.argv[3:7]]
QgsApplication.setPrefixPath("/usr", True)
qgis = QgsApplication([], True)  # the OAPIF provider needs the GUI-enabled application
qgis.initQgis()
uri = f"url='{url}' typename='{collection}'"
layer = QgsVectorLayer(uri, collection, "OAPIF")
result = {"valid": layer.isValid()}
if layer.isValid():
    request = QgsFeatureRequest()
    if bbox:
        request.setFilterRect(QgsRectangle(*bbox))
    features = list(layer.getFeatures(request))
    metadata = layer.dataProvider().layerMetadata()
    result["title"] = metadata.title()
    result["abstract"] = metadata.abstract()
    result["crs"] = layer.crs().authid()
    result["fields"] = layer.fields().names()
    result["count"] = len(features)
    result["features"] = [
        {"attributes": f.attributes(), "wkt": f.geometry().asWkt(7)} for f in features
    ]
print(json.dumps(result, default=str))
