"""QGIS (Debian's python3-qgis, headless) loads an OGC API Features layer from the server."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely

from tests.support.api import bbox_around, qgis_available, run_qgis_probe

PROBE = Path(__file__).parent.parent / "clients" / "qgis_probe.py"


pytestmark = pytest.mark.skipif(
    not qgis_available(),
    reason="QGIS is not installed (apt-get install python3-qgis; ./dev test installs it)",
)


def test_qgis_loads_the_lamps_layer_and_returns_the_features_of_a_bbox(
    server, db, tmp_path: Path
) -> None:
    bbox = bbox_around(db, "utility.street_lamps")
    layer = run_qgis_probe(PROBE, server, "lamps", *map(str, bbox), runtime_dir=tmp_path)
    assert layer["valid"]
    assert layer["crs"] == "EPSG:4326"
    assert "lamp_code" in layer["fields"]
    expected = {
        code
        for (code,) in db.execute(
            "SELECT lamp_code FROM utility.street_lamps_current "
            "WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
            bbox,
        )
    }
    index = layer["fields"].index("lamp_code")
    got = {f["attributes"][index] for f in layer["features"]}
    assert got == expected and expected
    box = shapely.box(*bbox)
    for feature in layer["features"]:
        assert shapely.from_wkt(feature["wkt"]).intersects(box)
