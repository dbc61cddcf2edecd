"""No plausible mistake loads, and none ends in a traceback (issue 12, items 4 and 5).

Each case of the corpus is a delivery or a job spec the way it goes wrong in practice —
truncated copies, missing Shapefile parts, a wrong EPSG code, an empty export, a typo'd
commune — run with the real ``sdi etl run`` against a warehouse of its own. Every case
asserts the exit code, a message naming the file and the cause, no traceback, an unchanged
warehouse and no run left 'running'.
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import psycopg
import pytest
import shapely

from tests.support import deliveries as d

# exit codes (sdi/errors.py)
CONFIG, SOURCE, REJECTED, REFUSED = 2, 3, 4, 8


@pytest.fixture(scope="module")
def warehouse(migrated: str, settings, tmp_path_factory) -> str:
    with d.warehouse(migrated, settings, "sdi_test_bad_inputs") as url:
        base = tmp_path_factory.mktemp("baseline")
        d.write(d.lamps(), base / "inbox" / "utility" / "lamps.gpkg", layer="lamps")
        (base / "jobs").mkdir()
        (base / "jobs" / "lamps.yml").write_text(d.lamp_spec("utility/lamps.gpkg"))
        result = d.sdi("etl", "run", "lamps", **_env(url, base))
        assert result.exit_code == 0, result.output
        yield url


def _env(url: str, folder: Path) -> dict[str, str]:
    return {
        "SDI_DATABASE_URL": url,
        "SDI_JOBS_DIR": str(folder / "jobs"),
        "SDI_SOURCE_DIR": str(folder / "inbox"),
        "SDI_STATE_DIR": str(folder / "state"),
    }


def _flat(text: str) -> str:
    """Output without whitespace: the console wraps long messages at its width."""
    return re.sub(r"\s+", "", text)


@dataclass
class Case:
    build: Callable[[Path], str]  # writes the delivery into the inbox; returns the spec
    exit_code: int
    says: tuple[str, ...]  # the file and the cause, as the message must name them
    job: str = "lamps"


def gpkg(inbox: Path, frame: gpd.GeoDataFrame | None = None, name: str = "lamps.gpkg") -> Path:
    return d.write(d.lamps() if frame is None else frame, inbox / "utility" / name, layer="lamps")


def shp(inbox: Path, frame: gpd.GeoDataFrame | None = None) -> Path:
    return d.write(d.lamps() if frame is None else frame, inbox / "utility" / "lamps.shp")


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def spec(path: str, **options) -> str:
    return d.lamp_spec(path, **options)


# -- the corpus ------------------------------------------------------------------------------


def unknown_epsg(inbox: Path) -> str:
    gpkg(inbox)
    return spec("utility/lamps.gpkg", srid=990099)


def wrong_crs(inbox: Path) -> str:
    gpkg(inbox)  # the file says EPSG:5899 (107°45'); the spec says 5898 (105°45')
    return spec("utility/lamps.gpkg", srid=5898)


def wrong_crs_shapefile(inbox: Path) -> str:
    shp(inbox)  # its .prj says 5899
    return spec("utility/lamps.shp", srid=3405)


def wrong_crs_geojson(inbox: Path) -> str:
    d.write(d.lamps().to_crs(4326), inbox / "utility" / "lamps.geojson")
    return spec("utility/lamps.geojson", srid=5899)


def truncated_shp(inbox: Path) -> str:
    truncate(shp(inbox), 0.5)
    return spec("utility/lamps.shp")


def truncated_dbf(inbox: Path) -> str:
    truncate(shp(inbox).with_suffix(".dbf"), 0.6)
    return spec("utility/lamps.shp")


def garbage_shp(inbox: Path) -> str:
    path = shp(inbox)
    path.write_bytes(b"\x00\x01garbage" * 50)
    return spec("utility/lamps.shp")


def shx_of_other_file(inbox: Path) -> str:
    path = shp(inbox)
    other = d.write(d.lamps(5), inbox / "other" / "lamps.shp")
    shutil.copy(other.with_suffix(".shx"), path.with_suffix(".shx"))
    return spec("utility/lamps.shp")


def missing_shx(inbox: Path) -> str:
    shp(inbox).with_suffix(".shx").unlink()
    return spec("utility/lamps.shp")


def missing_dbf(inbox: Path) -> str:
    shp(inbox).with_suffix(".dbf").unlink()
    return spec("utility/lamps.shp")


def empty_gpkg(inbox: Path) -> str:
    (inbox / "utility").mkdir(parents=True)
    (inbox / "utility" / "lamps.gpkg").write_bytes(b"")
    return spec("utility/lamps.gpkg")


def truncated_gpkg(inbox: Path) -> str:
    truncate(gpkg(inbox), 0.3)
    return spec("utility/lamps.gpkg")


def zero_features(inbox: Path) -> str:
    gpkg(inbox, d.lamps().iloc[:0])
    return spec("utility/lamps.gpkg")


def empty_csv(inbox: Path) -> str:
    (inbox / "utility").mkdir(parents=True)
    (inbox / "utility" / "lamps.csv").write_bytes(b"")
    return spec("utility/lamps.csv", srid=4326, source_extra="\n  geometry: {x: lon, y: lat}")


def header_only_csv(inbox: Path) -> str:
    (inbox / "utility").mkdir(parents=True)
    (inbox / "utility" / "lamps.csv").write_text(
        "lamp_id,commune_code,road_name,status,power_w,lon,lat\n"
    )
    return spec("utility/lamps.csv", srid=4326, source_extra="\n  geometry: {x: lon, y: lat}")


def wrong_layer(inbox: Path) -> str:
    gpkg(inbox)
    return spec("utility/lamps.gpkg", source_extra="\n  layer: den_chieu_sang")


def two_layers_unnamed(inbox: Path) -> str:
    path = gpkg(inbox)
    d.write(d.lamps(3), path, layer="other")
    return spec("utility/lamps.gpkg")


def zip_without_shp(inbox: Path) -> str:
    path = shp(inbox)
    with zipfile.ZipFile(inbox / "utility" / "lamps.zip", "w") as archive:
        for suffix in (".dbf", ".shx", ".prj"):
            archive.write(path.with_suffix(suffix), f"lamps{suffix}")
    for suffix in (".shp", ".dbf", ".shx", ".prj", ".cpg"):
        path.with_suffix(suffix).unlink(missing_ok=True)
    return spec("utility/lamps.zip")


def corrupt_zip(inbox: Path) -> str:
    (inbox / "utility").mkdir(parents=True)
    (inbox / "utility" / "lamps.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    return spec("utility/lamps.zip")


def mixed_geometry(inbox: Path) -> str:
    frame = d.lamps()
    frame.loc[frame.index[::2], "geometry"] = [
        shapely.LineString([(p.x, p.y), (p.x + 5, p.y + 5)]) for p in frame.geometry[::2]
    ]
    d.write(frame.to_crs(4326), inbox / "utility" / "lamps.geojson")
    return spec("utility/lamps.geojson", srid=4326)


def bad_yaml_indent(inbox: Path) -> str:
    gpkg(inbox)
    return spec("utility/lamps.gpkg").replace(
        "  table: utility.street_lamps", "  table: utility.street_lamps\n   mode: history"
    )


def unknown_spec_key(inbox: Path) -> str:
    gpkg(inbox)
    return spec("utility/lamps.gpkg").replace("natural_key:", "natual_key:")


def spec_without_srid(inbox: Path) -> str:
    gpkg(inbox)
    return spec("utility/lamps.gpkg").replace("  srid: 5899\n", "")


def srid_not_a_number(inbox: Path) -> str:
    gpkg(inbox)
    return spec("utility/lamps.gpkg", srid="VN-2000")


def text_into_integer_column(inbox: Path) -> str:
    gpkg(inbox)  # power_w of the target is an integer: a text mapping is refused by the database
    return spec("utility/lamps.gpkg").replace(
        "power_w: {from: power_w, type: integer}", "power_w: {from: road_name, type: text}"
    )


def unparsable_integers(inbox: Path) -> str:
    gpkg(inbox)
    return spec("utility/lamps.gpkg").replace(
        "power_w: {from: power_w, type: integer}", "power_w: {from: road_name, type: integer}"
    )


def missing_column(inbox: Path) -> str:
    gpkg(inbox)
    return spec("utility/lamps.gpkg").replace("from: status", "from: trang_thai")


def key_column_missing(inbox: Path) -> str:
    gpkg(inbox)
    return spec("utility/lamps.gpkg", key="{ma_den}")


def no_such_file(inbox: Path) -> str:
    gpkg(inbox)
    return spec("utility/lamp.gpkg")


def no_such_table(inbox: Path) -> str:
    gpkg(inbox)
    return spec("utility/lamps.gpkg").replace("utility.street_lamps", "utility.street_lights")


def duplicate_keys(inbox: Path) -> str:
    frame = d.lamps()
    frame["lamp_id"] = "L001"
    gpkg(inbox, frame)
    return spec("utility/lamps.gpkg")


def duplicate_geometries(inbox: Path) -> str:
    frame = d.lamps()
    frame["geometry"] = frame.geometry.iloc[0]
    gpkg(inbox, frame)
    return spec("utility/lamps.gpkg", validation_extra="\n  unique_geometry: true")


def swapped_csv_axes(inbox: Path) -> str:
    frame = d.lamps().to_crs(4326)
    rows = ["lamp_id,commune_code,road_name,status,power_w,lon,lat"] + [
        f"{r.lamp_id},{r.commune_code},{r.road_name},{r.status},{r.power_w},{g.x},{g.y}"
        for r, g in zip(frame.itertuples(), frame.geometry, strict=True)
    ]
    (inbox / "utility").mkdir(parents=True)
    (inbox / "utility" / "lamps.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return spec("utility/lamps.csv", srid=4326, source_extra="\n  geometry: {x: lat, y: lon}")


def gazetteer_typo(inbox: Path) -> str:
    frame = d.lamps()
    frame["commune"] = "Phường Hồng Gay"
    gpkg(inbox, frame)
    return spec(
        "utility/lamps.gpkg",
        fields_extra="  cabinet_id: {from: commune, gazetteer: commune_name}\n",
    )


def truncated_geojson(inbox: Path) -> str:
    truncate(d.write(d.lamps().to_crs(4326), inbox / "utility" / "lamps.geojson"), 0.5)
    return spec("utility/lamps.geojson", srid=4326)


def not_a_geojson(inbox: Path) -> str:
    (inbox / "utility").mkdir(parents=True)
    (inbox / "utility" / "lamps.geojson").write_text(json.dumps({"type": "Topology"}))
    return spec("utility/lamps.geojson", srid=4326)


def empty_geometries(inbox: Path) -> str:
    frame = d.lamps()
    frame["geometry"] = None
    gpkg(inbox, frame)
    return spec("utility/lamps.gpkg")


CASES: dict[str, Case] = {
    "unknown_epsg": Case(unknown_epsg, CONFIG, ("990099", "EPSG")),
    "wrong_crs": Case(wrong_crs, SOURCE, ("lamps.gpkg", "EPSG:5899", "5898")),
    "wrong_crs_shapefile": Case(wrong_crs_shapefile, SOURCE, ("lamps.shp", "EPSG:5899", "3405")),
    "wrong_crs_geojson": Case(wrong_crs_geojson, SOURCE, ("lamps.geojson", "EPSG:4326", "5899")),
    "truncated_shp": Case(truncated_shp, SOURCE, ("lamps.shp", "corrupt file", "truncated")),
    "truncated_dbf": Case(truncated_dbf, SOURCE, ("lamps.dbf", "corrupt file", "truncated")),
    "garbage_shp": Case(garbage_shp, SOURCE, ("lamps.shp", "cannot open")),
    "shx_of_other_file": Case(shx_of_other_file, SOURCE, ("lamps.shx", "corrupt file")),
    "missing_shx": Case(missing_shx, SOURCE, ("lamps.shp", ".shx")),
    "missing_dbf": Case(missing_dbf, SOURCE, ("lamps.shp", "lamp_id")),
    "empty_gpkg": Case(empty_gpkg, SOURCE, ("lamps.gpkg", "cannot open")),
    "truncated_gpkg": Case(truncated_gpkg, SOURCE, ("lamps.gpkg",)),
    "zero_features": Case(zero_features, REJECTED, ("lamps.gpkg", "no features")),
    "empty_csv": Case(empty_csv, SOURCE, ("lamps.csv",)),
    "header_only_csv": Case(header_only_csv, REJECTED, ("lamps.csv", "no features")),
    "wrong_layer": Case(wrong_layer, SOURCE, ("lamps.gpkg", "den_chieu_sang", "lamps")),
    "two_layers_unnamed": Case(two_layers_unnamed, SOURCE, ("lamps.gpkg", "source.layer")),
    "zip_without_shp": Case(zip_without_shp, SOURCE, ("lamps.zip", "no .shp")),
    "corrupt_zip": Case(corrupt_zip, SOURCE, ("lamps.zip", "corrupt file")),
    "mixed_geometry": Case(mixed_geometry, REJECTED, ("lamps.geojson", "LineString", "Point")),
    "bad_yaml_indent": Case(bad_yaml_indent, CONFIG, ("lamps.yml",)),
    "unknown_spec_key": Case(unknown_spec_key, CONFIG, ("lamps.yml", "natual_key")),
    "spec_without_srid": Case(spec_without_srid, CONFIG, ("lamps.yml", "srid")),
    "srid_not_a_number": Case(srid_not_a_number, CONFIG, ("lamps.yml", "srid")),
    "text_into_integer_column": Case(
        text_into_integer_column, REFUSED, ("lamps.yml", "power_w", "integer")
    ),
    "unparsable_integers": Case(unparsable_integers, REJECTED, ("lamps.gpkg", "road_name")),
    "missing_column": Case(missing_column, SOURCE, ("lamps.gpkg", "trang_thai")),
    "key_column_missing": Case(key_column_missing, SOURCE, ("lamps.gpkg", "ma_den")),
    "no_such_file": Case(no_such_file, SOURCE, ("lamp.gpkg", "no file matches")),
    "no_such_table": Case(no_such_table, CONFIG, ("utility.street_lights",)),
    "duplicate_keys": Case(duplicate_keys, REJECTED, ("lamps.gpkg", "duplicate natural key")),
    "duplicate_geometries": Case(
        duplicate_geometries, REJECTED, ("lamps.gpkg", "duplicate geometry")
    ),
    "swapped_csv_axes": Case(swapped_csv_axes, REJECTED, ("lamps.csv", "outside the expected")),
    "gazetteer_typo": Case(gazetteer_typo, REJECTED, ("lamps.gpkg", "Hồng Gay", "Hồng Gai?")),
    "truncated_geojson": Case(truncated_geojson, SOURCE, ("lamps.geojson",)),
    "not_a_geojson": Case(not_a_geojson, SOURCE, ("lamps.geojson",)),
    "empty_geometries": Case(empty_geometries, REJECTED, ("lamps.gpkg", "no geometry")),
}


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, warehouse: str, tmp_path: Path) -> None:
    case = CASES[name]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / f"{case.job}.yml").write_text(case.build(inbox), encoding="utf-8")
    before = d.fingerprint(warehouse)

    result = d.sdi("etl", "run", case.job, **_env(warehouse, tmp_path))

    output = result.output
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        repr(result.exception),
        output,
    )
    assert result.exit_code == case.exit_code, output
    for words in case.says:
        assert _flat(words) in _flat(output), f"{words!r} not in: {output}"
    assert d.fingerprint(warehouse) == before, "a failed run changed the warehouse"


def test_srid_override_loads_and_is_recorded(warehouse: str, tmp_path: Path) -> None:
    """The spec may overrule the file's own CRS, with a reason the run keeps."""
    d.write(d.lamps(prefix="OVR"), tmp_path / "inbox" / "utility" / "lamps.gpkg", layer="lamps")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "lamps.yml").write_text(
        d.lamp_spec(
            "utility/lamps.gpkg",
            srid=5898,
            source_extra="\n  srid_override: the .prj the software writes is known to be wrong",
        )
    )
    result = d.sdi("etl", "run", "lamps", **_env(warehouse, tmp_path))
    assert result.exit_code == 0, result.output
    with psycopg.connect(warehouse) as conn:
        crs = conn.execute(
            "SELECT options->'crs' FROM etl.runs WHERE job = 'lamps' AND status = 'succeeded' "
            "ORDER BY run_id DESC LIMIT 1"
        ).fetchone()[0]
    (entry,) = crs.values()
    assert entry["file_crs"].startswith("EPSG:5899")
    assert entry["agrees"] is False
    assert 25_000 < entry["offset_m"] < 27_000
    assert "known to be wrong" in entry["note"]
