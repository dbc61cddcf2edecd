"""Helpers of the API tests: plain functions, no fixtures (those are in conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-qgis


def bbox_around(db, table: str, half_width: float = 0.02) -> tuple[float, ...]:
    """A small bbox centred on a feature of ``table`` in Hạ Long (so it is never empty)."""
    x, y = db.execute(
        f"SELECT ST_X(ST_Centroid(f.geom)), ST_Y(ST_Centroid(f.geom)) FROM {table}_current f "
        "JOIN admin.communes_current c USING (commune_code) WHERE c.city = 'ha_long' "
        "ORDER BY f.natural_key LIMIT 1"
    ).fetchone()
    return (x - half_width, y - half_width, x + half_width, y + half_width)


def query_of(link: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


def next_link(body: dict) -> str | None:
    return next((x["href"] for x in body["links"] if x["rel"] == "next"), None)


def qgis_available() -> bool:
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
