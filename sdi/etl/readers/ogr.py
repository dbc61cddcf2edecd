"""Every vector format GDAL reads (Shapefile, GeoPackage, GeoJSON, KML, GML, MapInfo TAB/MIF,
FlatGeobuf, …), streamed as Arrow batches with pyogrio. DGN has its own reader (``dgn.py``),
which uses the GDAL helpers here.

Text of Shapefile and MapInfo files is read byte-transparently (GDAL is told ISO-8859-1, a
MapInfo charset is neutralised) and decoded in ``common.TextDecoder``, so TCVN3, VNI, cp1258
and UTF-8 all arrive intact whatever the file claims; a ``.cpg`` or MapInfo charset is
honoured unless the bytes contradict it. Formats that store Unicode (GeoPackage, GeoJSON,
KML, GML, FlatGeobuf) are taken as they are.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyogrio
from pyogrio.errors import DataLayerError

from sdi.errors import SourceError
from sdi.etl import encodings
from sdi.etl.readers.common import Batch, TextDecoder, short_message
from sdi.etl.spec import SourceSpec
from sdi.settings import Settings

# Drivers whose attribute bytes carry no reliable encoding: read as bytes, decoded here.
_LEGACY_BYTE_DRIVERS = {"ESRI Shapefile", "MapInfo File"}  # DGN: dgn.py
_KML_DRIVERS = {"KML", "LIBKML"}
_FORMAT_NAMES = {
    "GPKG": "GeoPackage",
    "GeoJSON": "GeoJSON",
    "GeoJSONSeq": "GeoJSON",
    "KML": "KML",
    "LIBKML": "KML",
    "GML": "GML",
    "FlatGeobuf": "FlatGeobuf",
}


def _cpg_encoding(path: Path) -> tuple[str | None, str | None]:
    for suffix in (".cpg", ".CPG"):
        cpg = path.with_suffix(suffix)
        if cpg.exists():
            text = cpg.read_bytes().decode("latin-1").strip()
            return encodings.canonical_encoding(text), f"{cpg.name} ({text})"
    return None, None


_CHARSET_LINE = re.compile(rb'(?im)^(\s*!charset\s+)"?([^"\s]+)"?')
_CHARSET_ATTR = re.compile(rb'(?i)(Charset\s+)"([^"]*)"')


def _mapinfo_charset(header: bytes) -> str | None:
    match = _CHARSET_LINE.search(header) or _CHARSET_ATTR.search(header)
    return match[2].decode("latin-1") if match else None


@contextlib.contextmanager
def _mapinfo_neutral(path: Path) -> Iterator[tuple[Path, str | None]]:
    """A view of a MapInfo table with its charset set to Neutral, so GDAL hands over the
    bytes unchanged (GDAL has no option to stop recoding, and cp1252 recoding drops bytes
    TCVN3 uses). The delivered files are never modified: the header is copied into a
    temporary folder and the data files are linked next to it."""
    suffix = path.suffix.lower()
    if suffix == ".tab":
        header = path.read_bytes()[:65536]
    elif suffix == ".mif":
        with path.open("rb") as handle:
            header = handle.read(65536)
    else:
        yield path, None
        return
    charset = _mapinfo_charset(header)
    if charset is None or charset.lower() == "neutral":
        yield path, charset
        return
    with tempfile.TemporaryDirectory(prefix="sdi-mapinfo-") as tmp:
        view = Path(tmp) / path.name
        with path.open("rb") as source, view.open("wb") as target:
            head = source.read(65536)
            head = _CHARSET_LINE.sub(rb"\1Neutral", head, count=1)
            head = _CHARSET_ATTR.sub(rb'\1"Neutral"', head, count=1)
            target.write(head)
            shutil.copyfileobj(source, target)
        for sibling in path.parent.iterdir():
            if sibling.stem == path.stem and sibling.name != path.name:
                link = Path(tmp) / sibling.name
                try:
                    os.symlink(sibling.resolve(), link)
                except OSError:
                    shutil.copyfile(sibling, link)
        yield view, charset


def count(path: Path, source: SourceSpec) -> int | None:
    """Feature count when the format knows it cheaply (for progress bars)."""
    try:
        return pyogrio.read_info(path, layer=source.layer, **open_options(path))["features"]
    except Exception:
        return None


def open_options(path: Path) -> dict[str, str]:
    """GDAL open options every open of this file needs."""
    if path.suffix.lower() in (".gml", ".xml"):
        # Never write a .gfs next to a delivered file (GDAL does by default when it has to
        # scan a GML); a .xsd or .gfs that is delivered with it is used.
        return {"WRITE_GFS": "NO"}
    return {}


def driver_of(path: Path) -> str:
    """The GDAL driver that opens ``path`` (the registry chooses a reader by it)."""
    try:
        stat = path.stat()
    except OSError:
        raise SourceError(f"{path}: file not found") from None
    return _driver(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=32)
def _driver(path: Path, mtime_ns: int, size: int) -> str:
    """Asked once per version of a file: choosing the reader and reading both need it, and
    opening a GML without a .gfs means scanning it."""
    if path.suffix.lower() == ".zip":
        check_zip(path)
    try:
        return pyogrio.read_info(path, layer=0, **open_options(path))["driver"]
    except Exception as exc:
        raise SourceError(
            f"{path}: GDAL cannot open it as a vector dataset ({short_message(exc)}); check "
            "that the file is complete and in a format GDAL reads (a shapefile needs its "
            ".shp, .shx and .dbf; a MapInfo table its .tab, .dat, .map and .id)"
        ) from None


_DATA_SUFFIXES = (".shp", ".gpkg", ".geojson", ".json", ".kml", ".gml", ".tab", ".mif", ".fgb")


def check_zip(path: Path) -> None:
    """A zipped delivery must hold a dataset GDAL can open: a zip of a Shapefile's .dbf and
    .shx without its .shp would otherwise load as a table of rows without geometry."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{path}: corrupt file: not a readable zip archive ({exc})") from None
    if not names:
        raise SourceError(f"{path}: the zip archive is empty")
    lower = [n.lower() for n in names]
    if any(n.endswith(_DATA_SUFFIXES) for n in lower):
        stems = {n.rsplit(".", 1)[0] for n in lower if n.endswith((".dbf", ".shx"))}
        shps = {n.rsplit(".", 1)[0] for n in lower if n.endswith(".shp")}
        if stems - shps and not shps:
            raise SourceError(f"{path}: the zip holds parts of a Shapefile but no .shp")
        return
    listing = ", ".join(names[:8]) + (" …" if len(names) > 8 else "")
    if any(n.endswith((".dbf", ".shx", ".prj", ".cpg")) for n in lower):
        raise SourceError(
            f"{path}: the zip holds parts of a Shapefile ({listing}) but no .shp: ask for the "
            "complete Shapefile (.shp, .shx, .dbf, .prj)"
        )
    raise SourceError(f"{path}: the zip holds no dataset the ETL reads ({listing})")


def _layers(path: Path) -> list[tuple[str, str | None]]:
    options = open_options(path)
    try:
        if not options:
            return [(str(name), geometry) for name, geometry in pyogrio.list_layers(path)]
        layers: list[tuple[str, str | None]] = []  # list_layers takes no open options: ask each
        while True:
            try:
                info = pyogrio.read_info(path, layer=len(layers), **options)
            except DataLayerError:
                return layers
            layers.append((info["layer_name"], info["geometry_type"]))
    except Exception as exc:
        raise SourceError(f"{path}: GDAL cannot list its layers ({short_message(exc)})") from None


def _choose_layer(path: Path, source: SourceSpec, driver: str) -> str | None:
    layers = _layers(path)
    names = [name for name, _ in layers]
    listing = ", ".join(names) or "none"
    if source.layer is not None:
        if source.layer in names:
            return source.layer
        raise SourceError(
            f"{path}: no layer {source.layer!r}; the file has: {listing} "
            "(fix source.layer in the job spec)"
        )
    if len(layers) <= 1:
        return names[0] if names else None
    spatial = [name for name, geometry in layers if geometry not in (None, "None")]
    if len(spatial) == 1:
        return spatial[0]
    raise SourceError(
        f"{path}: the {driver} file has {len(layers)} layers ({listing}); "
        "name the one to load in source.layer"
    )


def check_shapefile(path: Path) -> None:
    """A truncated or damaged Shapefile is a corrupt file, not features "without geometry":
    GDAL reads what it can and returns the rest as rows with null geometries. The three
    headers say how long each part must be; a part shorter than that is refused here."""
    import struct

    parts = {s: _sibling(path, s) for s in (".shp", ".shx", ".dbf")}
    problems = []
    with contextlib.suppress(OSError):
        for suffix in (".shp", ".shx"):
            part = parts[suffix]
            if part is None:
                continue
            data = part.read_bytes()[:100]
            if len(data) < 100 or struct.unpack(">i", data[:4])[0] != 9994:
                problems.append(f"{part.name} has no valid Shapefile header")
                continue
            declared = struct.unpack(">i", data[24:28])[0] * 2
            actual = part.stat().st_size
            if actual < declared:
                problems.append(
                    f"{part.name} is {actual} bytes but its header says {declared} (truncated)"
                )
        dbf = parts[".dbf"]
        if dbf is not None:
            head = dbf.read_bytes()[:32]
            if len(head) < 32:
                problems.append(f"{dbf.name} has no valid dBASE header")
            else:
                records, header_size, record_size = struct.unpack("<IHH", head[4:12])
                expected = header_size + records * record_size
                if dbf.stat().st_size < expected:
                    problems.append(
                        f"{dbf.name} is {dbf.stat().st_size} bytes but its header says "
                        f"{records} records, {expected} bytes (truncated)"
                    )
                shx = parts[".shx"]
                if shx is not None and not problems:
                    shapes = (shx.stat().st_size - 100) // 8
                    if shapes != records:
                        problems.append(
                            f"{shx.name} indexes {shapes} shapes but {dbf.name} has {records} "
                            "records"
                        )
    if problems:
        raise SourceError(
            f"{path}: corrupt file: {'; '.join(problems)}. Ask the department to deliver the "
            "Shapefile again (all of .shp, .shx and .dbf, copied completely)"
        )


def _sibling(path: Path, suffix: str) -> Path | None:
    for candidate in (path.with_suffix(suffix), path.with_suffix(suffix.upper())):
        if candidate.exists():
            return candidate
    return None


def arrow_frame(record_batch: pa.RecordBatch, raw_strings: bool) -> pd.DataFrame:
    """Arrow → pandas; with ``raw_strings`` string columns are taken as bytes (GDAL may hand
    over bytes that are not UTF-8) and turned into latin-1 text standing for them."""
    if not raw_strings:
        return record_batch.to_pandas()
    arrays, text_columns = [], []
    for name, array in zip(record_batch.schema.names, record_batch.columns, strict=True):
        if pa.types.is_string(array.type):
            array = array.view(pa.binary())
            text_columns.append(name)
        elif pa.types.is_large_string(array.type):
            array = array.view(pa.large_binary())
            text_columns.append(name)
        arrays.append(array)
    frame = pa.RecordBatch.from_arrays(arrays, names=record_batch.schema.names).to_pandas()
    for column in text_columns:
        frame[column] = frame[column].map(
            lambda v: v.decode("latin-1") if isinstance(v, bytes) else None
        )
    return frame


def read(
    path: Path, source: SourceSpec, batch_size: int, settings: Settings | None = None
) -> Iterator[Batch]:
    """Stream the chosen layer as batches of decoded rows."""
    driver = driver_of(path)
    if driver == "ESRI Shapefile" and path.suffix.lower() == ".shp":
        check_shapefile(path)
    layer = _choose_layer(path, source, driver)
    raw = driver in _LEGACY_BYTE_DRIVERS
    declared = declared_by = None
    if driver == "ESRI Shapefile":
        declared, declared_by = _cpg_encoding(path)
    with contextlib.ExitStack() as stack:
        opened = path
        options: dict[str, str] = {}
        if driver == "MapInfo File":
            opened, charset = stack.enter_context(_mapinfo_neutral(path))
            if charset and charset.lower() != "neutral":
                declared = encodings.canonical_encoding(charset)
                declared_by = f"MapInfo charset ({charset})"
        elif driver == "ESRI Shapefile":
            options["encoding"] = "ISO-8859-1"  # bytes through unchanged; decoded below
        text = TextDecoder(
            path,
            source.encoding,
            raw=raw,
            declared=declared,
            declared_by=declared_by,
            format_name=_FORMAT_NAMES.get(driver, driver),
        )
        try:
            meta, reader = stack.enter_context(
                pyogrio.open_arrow(
                    opened,
                    layer=layer,
                    batch_size=batch_size,
                    use_pyarrow=True,
                    **options,
                    **open_options(path),
                )
            )
        except Exception as exc:
            raise SourceError(
                f"{path}: GDAL cannot read layer {layer!r} ({short_message(exc)})"
            ) from None
        geometry_column = meta["geometry_name"] or "wkb_geometry"
        first_row = 1
        batches = iter(reader)
        while True:
            try:
                record_batch = next(batches)
            except StopIteration:
                break
            except Exception as exc:
                raise SourceError(
                    f"{path}: GDAL failed reading features from number {first_row} on "
                    f"({short_message(exc)}); the file is damaged or truncated"
                ) from None
            wkb = None
            if geometry_column in record_batch.schema.names:
                # kept apart from the frame, in Arrow: to_pandas() of the WKB column (an
                # Arrow extension type) is slow (docs/etl-performance.md)
                wkb = record_batch.column(geometry_column).cast(pa.binary())
                record_batch = record_batch.drop_columns([geometry_column])
            frame = arrow_frame(record_batch, raw_strings=driver == "MapInfo File")
            if driver in _KML_DRIVERS:
                frame = _kml_columns(frame)
            elif driver == "OSM" and "other_tags" in frame.columns:
                frame = _osm_columns(frame)
            rows = len(frame)
            batch = text.batch(path, first_row, frame, None)
            batch.wkb = wkb  # decoded into shapely geometries when first needed
            yield batch
            first_row += rows


_OSM_TAG = re.compile(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"')


def _osm_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """GDAL's OSM driver keeps the tags its osmconf.ini does not list in one ``other_tags``
    text (``"k"=>"v","k2"=>"v2"``): each becomes a column of its own, as in an Overpass
    extract, so a job spec names any tag the same way."""
    parsed = [
        {k.replace('\\"', '"'): v.replace('\\"', '"') for k, v in _OSM_TAG.findall(text)}
        if isinstance(text, str)
        else {}
        for text in frame["other_tags"]
    ]
    extra = pd.DataFrame(parsed, index=frame.index)
    extra = extra[[c for c in extra.columns if c not in frame.columns]]
    return pd.concat([frame, extra.astype(object).where(extra.notna(), None)], axis=1)


def _kml_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """GDAL's KML driver says Description, LIBKML description: offer Description always."""
    if "description" in frame.columns and "Description" not in frame.columns:
        frame = frame.rename(columns={"description": "Description"})
    return frame
