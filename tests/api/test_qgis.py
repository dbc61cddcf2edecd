"""QGIS (Debian's python3-qgis, headless) loads an OGC API Features layer from the server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import shapely

from tests.api.test_features import bbox_around

PROBE = Path(__file__).parent.parent / "clients" / "qgis_probe.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def _qgis_available() -> bool:
    try:
        return (
            subprocess.run(
                [SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=60
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_qgis_probe(probe: Path, *args: str, runtime_dir: Path) -> dict:
    """Run a probe script under the system Python with headless QGIS; its last stdout line is
    the JSON it reports. ``runtime_dir`` becomes Qt's runtime directory (Qt wants it 0700)."""
    runtime_dir.chmod(0o700)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(runtime_dir))
    result = subprocess.run(
        [SYSTEM_PYTHON, str(probe), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


pytestmark = pytest.mark.skipif(
    not _qgis_available(),
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
