"""OpenStreetMap extracts load: ``.osm.pbf`` (GDAL's OSM driver) and Overpass JSON
(``sdi/etl/readers/overpass.py``).

Both fixtures are written at test time: the PBF with pyosmium (GDAL cannot write PBF; the
``osmium`` package is a test dependency), the Overpass answer as the JSON the API returns.
They hold the same street lamps (``highway=street_lamp`` nodes in Hạ Long), a road and a
building, so both readers are checked against one expectation.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
import shapely

from sdi.etl.readers import read_batches, reader_for
from sdi.etl.spec import SourceSpec
from tests.support import deliveries as d

osmium = pytest.importorskip("osmium", reason="pyosmium writes the .osm.pbf fixture")

LAMPS = [(1000 + i, 107.05 + 0.0003 * i, 20.95 + 0.0001 * i, f"HL-{i:03d}") for i in range(12)]
BUILDING = [(2001, 107.060, 20.960), (2002, 107.061, 20.960), (2003, 107.061, 20.961),
            (2004, 107.060, 20.961)]  # fmt: skip


def _tags(i: int, ref: str) -> dict[str, str]:
    return {"highway": "street_lamp", "ref": ref, "lamp_mount": "pole", "name": f"Đèn {ref}",
            "power": str(100 + 50 * (i % 3))}  # fmt: skip


def write_pbf(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = osmium.SimpleWriter(str(path))
    try:
        for i, (node_id, lon, lat, ref) in enumerate(LAMPS):
            writer.add_node(osmium.osm.mutable.Node(id=node_id, location=(lon, lat),
                                                    tags=_tags(i, ref), version=1))  # fmt: skip
        for node_id, lon, lat in BUILDING:
            writer.add_node(osmium.osm.mutable.Node(id=node_id, location=(lon, lat), version=1))
        writer.add_way(
            osmium.osm.mutable.Way(
                id=3001, nodes=[2001, 2002, 2003, 2004, 2001], tags={"building": "yes"}, version=1
            )
        )
        writer.add_way(
            osmium.osm.mutable.Way(
                id=3002, nodes=[1000, 1011], tags={"highway": "primary", "name": "Đường 25/4"},
                version=1,
            )
        )  # fmt: skip
    finally:
        writer.close()
    return path


def write_overpass(path: Path) -> Path:
    elements = [
        {"type": "node", "id": node_id, "lat": lat, "lon": lon, "tags": _tags(i, ref)}
        for i, (node_id, lon, lat, ref) in enumerate(LAMPS)
    ]
    elements += [{"type": "node", "id": n, "lat": lat, "lon": lon} for n, lon, lat in BUILDING]
    elements += [
        {"type": "way", "id": 3001, "nodes": [2001, 2002, 2003, 2004, 2001],
         "tags": {"building": "yes"}},
        {"type": "way", "id": 3002, "nodes": [1000, 1011],
         "tags": {"highway": "primary", "name": "Đường 25/4"}},
    ]  # fmt: skip
    answer = {
        "version": 0.6,
        "generator": "Overpass API 0.7.62",
        "osm3s": {"timestamp_osm_base": "2026-12-01T00:00:00Z"},
        "elements": elements,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(answer, ensure_ascii=False), encoding="utf-8")
    return path


OSM_SPEC = """title: Street lamps from OpenStreetMap
source:
  path: {path}
  layer: points
  srid: 4326
target:
  table: utility.street_lamps
natural_key: "{{osm_id}}"
fields:
  lamp_code: {{from: ref, required: true}}
  road_name: name
  status: {{value: "on"}}
  power_w: {{from: power, type: integer}}
"""


@pytest.fixture(scope="module")
def warehouse(migrated: str, settings):
    with d.warehouse(migrated, settings, "sdi_test_osm") as url:
        yield url


@pytest.mark.parametrize("name", ["lamps.osm.pbf", "lamps.json"])
def test_osm_extract_loads(name: str, warehouse: str, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox" / "osm"
    (write_pbf if name.endswith(".pbf") else write_overpass)(inbox / name)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "osm_lamps.yml").write_text(OSM_SPEC.format(path=f"osm/{name}"))
    env = {
        "SDI_DATABASE_URL": warehouse,
        "SDI_JOBS_DIR": str(tmp_path / "jobs"),
        "SDI_SOURCE_DIR": str(tmp_path / "inbox"),
        "SDI_STATE_DIR": str(tmp_path / "state"),
    }
    result = d.sdi("etl", "run", "osm_lamps", "--force", **env)
    assert result.exit_code == 0, result.output
    with psycopg.connect(warehouse) as conn:
        rows = conn.execute(
            "SELECT natural_key, lamp_code, road_name, power_w, ST_X(geom), ST_Y(geom) "
            "FROM utility.street_lamps WHERE valid_to IS NULL ORDER BY lamp_code"
        ).fetchall()
    assert len(rows) == len(LAMPS)
    for (key, code, road, power, x, y), (node_id, lon, lat, ref) in zip(rows, LAMPS, strict=True):
        assert key == f"node/{node_id}" if name.endswith(".json") else key == str(node_id)
        assert (code, road) == (ref, f"Đèn {ref}")
        assert power in (100, 150, 200)
        assert abs(x - lon) < 1e-7 and abs(y - lat) < 1e-7


@pytest.mark.parametrize("name", ["x.osm.pbf", "x.json"])
def test_osm_layers(name: str, tmp_path: Path) -> None:
    path = (write_pbf if name.endswith(".pbf") else write_overpass)(tmp_path / name)
    polygons = next(read_batches(path, SourceSpec(path=name, layer="multipolygons", srid=4326)))
    assert polygons.frame["building"].tolist() == ["yes"]
    assert shapely.get_type_id(polygons.geometry[0]) == 6  # MultiPolygon
    assert abs(shapely.area(polygons.geometry[0]) - 1e-6) < 1e-9
    lines = next(read_batches(path, SourceSpec(path=name, layer="lines", srid=4326)))
    assert lines.frame["name"].tolist() == ["Đường 25/4"]


def test_geojson_is_not_taken_for_overpass(tmp_path: Path) -> None:
    path = d.write(d.lamps().to_crs(4326), tmp_path / "lamps.json", driver="GeoJSON")
    assert reader_for(path, SourceSpec(path="lamps.json")).__name__.endswith(".ogr")
    overpass = write_overpass(tmp_path / "answer.json")
    assert reader_for(overpass, SourceSpec(path="answer.json")).__name__.endswith(".overpass")


def test_overpass_without_a_layer_names_the_layers(tmp_path: Path) -> None:
    path = write_overpass(tmp_path / "answer.json")
    with pytest.raises(Exception, match=r"name the layer to load in source\.layer"):
        next(read_batches(path, SourceSpec(path="answer.json", srid=4326)))
