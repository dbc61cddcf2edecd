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


@pytest.mark.parametrize("locale", ["en_US.UTF-8", "C.UTF-8", "vi_VN.UTF-8"])
def test_qgis_shows_the_vietnamese_titles_whatever_its_locale(
    server, monkeypatch, tmp_path: Path, locale: str
) -> None:
    """QGIS (Qt) sends the desktop's locale as Accept-Language ("en-US,*" under an English
    one): the service takes it for no preference and answers Vietnamese (sdi.api.pages)."""
    for name in ("LANG", "LC_ALL", "LANGUAGE"):
        monkeypatch.setenv(name, locale)
    layer = run_qgis_probe(PROBE, server, "buildings", runtime_dir=tmp_path)
    assert layer["valid"]
    assert layer["title"] == "Công trình xây dựng", layer["title"]


def test_qt_automatic_languages_answer_vietnamese_a_choice_english(api) -> None:
    """The headers QGIS 3.22 sends (captured: Qt's QNetworkAccessManager) against a browser's."""

    def title(**headers: str) -> str:
        found = api.get("/collections", params={"f": "json"}, headers=headers).json()
        return next(c["title"] for c in found["collections"] if c["id"] == "buildings")

    for qt in ("en-US,*", "en,*", "vi-VN,en,*"):
        assert title(**{"Accept-Language": qt}) == "Công trình xây dựng", qt
    assert title(**{"Accept-Language": "en-US,en;q=0.9"}) == "Buildings"
    assert title() == "Công trình xây dựng"
    english = api.get(
        "/collections", params={"f": "json", "lang": "en"}, headers={"Accept-Language": "en-US,*"}
    ).json()
    assert {c["id"]: c["title"] for c in english["collections"]}["buildings"] == "Buildings"
