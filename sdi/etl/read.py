"""Read delivered files as a stream of batches (never the whole file in memory).

Vector formats GDAL knows (Shapefile, GeoPackage, GeoJSON, KML, GML, MapInfo, DGN, …) are
read as Arrow batches with pyogrio; CSV with pandas. Each batch carries its attribute frame
with text already decoded to Unicode NFC, the geometries in the source CRS, the source row
number of its first row so rejects can point back at the file, and the encoding its text was
decoded with plus the reason (``encoding: auto`` detects it; see ``docs/formats.md``).

Text of Shapefile, MapInfo, DGN and CSV files is read byte-transparently (GDAL is told
ISO-8859-1, a MapInfo charset is neutralised, CSV is read as latin-1) and decoded here, so
TCVN3, VNI, cp1258 and UTF-8 all arrive intact whatever the file claims; a ``.cpg`` or
MapInfo charset is honoured unless the bytes contradict it. Formats that store Unicode
(GeoPackage, GeoJSON, KML, GML, FlatGeobuf) are taken as they are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
import shapely
from pyogrio.errors import DataLayerError

from sdi.errors import SourceError
from sdi.etl import encodings
from sdi.etl.spec import SourceSpec

BATCH_SIZE = 100_000
SAMPLE_VALUES = 5_000  # distinct text values looked at to detect an encoding

# Drivers whose attribute bytes carry no reliable encoding: read as bytes, decoded here.
_LEGACY_BYTE_DRIVERS = {"ESRI Shapefile", "MapInfo File", "DGN"}
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
_ENCODING_CHOICES = "auto, utf-8, cp1258, tcvn3, vni, latin-1"


@dataclass
class Batch:
    path: Path
    first_row: int  # source row number of frame.iloc[0] (CSV: line number; others: feature)
    frame: pd.DataFrame
    # shapely geometries in the source CRS; from GDAL formats decoded from ``wkb`` when first
    # asked for (a re-run skips unchanged rows before that: their WKB is only hashed)
    shapes: np.ndarray | None
    # How the text was decoded ("tcvn3", "utf-8", "cp1258", …; None when there is no text to
    # decode, e.g. a raster) and why: the job spec, the file's .cpg, or auto-detection evidence.
    # With encoding: auto the value on a file's last batch is final (earlier batches can only
    # differ when all their text was plain ASCII, which every encoding reads the same way).
    encoding: str | None = None
    encoding_evidence: str | None = None
    # The geometries' WKB as delivered (GDAL formats), as GDAL handed it over in Arrow.
    wkb: pa.BinaryArray | None = None

    @property
    def geometry(self) -> np.ndarray | None:
        if self.shapes is None and self.wkb is not None:
            self.shapes = _geometries(self.wkb.to_numpy(zero_copy_only=False))
        return self.shapes

    @geometry.setter
    def geometry(self, value: np.ndarray | None) -> None:
        self.shapes = value

    def slice(self, start: int, stop: int) -> Batch:
        """Rows ``start`` to ``stop`` (positions) as a batch of their own."""
        return dataclasses.replace(
            self,
            first_row=self.first_row + start,
            frame=self.frame.iloc[start:stop].reset_index(drop=True),
            shapes=None if self.shapes is None else self.shapes[start:stop],
            wkb=None if self.wkb is None else self.wkb.slice(start, stop - start),
        )

    def subset(self, keep: np.ndarray) -> Batch:
        """The rows where ``keep`` is true (geometries not decoded yet stay so)."""
        return Batch(
            self.path,
            self.first_row,
            self.frame[keep],
            None if self.shapes is None else self.shapes[keep],
            self.encoding,
            self.encoding_evidence,
            None if self.wkb is None else self.wkb.filter(pa.array(keep)),
        )


# ---------------------------------------------------------------------------------------
# Text decoding


class _MixedEncoding(Exception):
    def __init__(self, column: str, value: str) -> None:
        self.column, self.value = column, value


def _is_text(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series)


def _nfc(text: str) -> str:
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


class TextDecoder:
    """Decides how one file's text is decoded and decodes frames.

    ``raw=True``: text values are latin-1 strings standing for the file's bytes (Shapefile
    read as ISO-8859-1, MapInfo/DGN bytes, CSV read as latin-1). ``raw=False``: the format
    stores Unicode; a legacy encoding in the spec then means the text was mis-read as latin-1
    or cp1252 before it was saved ("Qu¶ng Ninh" in a GeoJSON) and is repaired.
    """

    def __init__(
        self,
        path: Path,
        requested: str,
        *,
        raw: bool,
        declared: str | None = None,
        declared_by: str | None = None,
        format_name: str = "file",
        decoded: bool = False,
    ) -> None:
        self.path = path
        self.requested = requested
        self.raw = raw
        self.decoded = decoded  # already decoded in the requested encoding: only NFC is left
        self.declared = declared
        self.declared_by = declared_by
        self.format_name = format_name
        self.encoding: str | None = None
        self.evidence: str | None = None
        self.final = False
        if requested != "auto":
            self.encoding = "utf-8" if requested == "utf-8-sig" and raw else requested
            self.final = True
            self.evidence = f"source.encoding: {requested} in the job spec"
            if declared and declared != self.encoding and raw:
                self.evidence += f" (the file's {declared_by} says {declared}; the job spec wins)"
            if not raw and not decoded and requested in ("tcvn3", "vni", "cp1258"):
                self.evidence += (
                    f"; {format_name} stores Unicode, so its text is taken as {requested} "
                    "bytes that were read as latin-1/cp1252 before the file was saved"
                )

    # -- deciding --------------------------------------------------------------------------
    @staticmethod
    def _strings(frame: pd.DataFrame, names: list[str]) -> list[str]:
        seen: dict[str, None] = dict.fromkeys(n for n in names if isinstance(n, str))
        for column in frame.columns:
            if not _is_text(frame[column]):
                continue
            for value in pd.unique(frame[column].dropna()):
                if isinstance(value, str) and value:
                    seen[value] = None
                    if len(seen) >= SAMPLE_VALUES:
                        return list(seen)
        return list(seen)

    def decide(self, frame: pd.DataFrame, names: list[str]) -> None:
        if self.final:
            return
        strings = self._strings(frame, names)
        if self.raw:
            self._decide_raw([s.encode("latin-1") for s in strings])
        else:
            self._decide_unicode(strings)

    def _decide_raw(self, samples: list[bytes]) -> None:
        found = encodings.assess(samples)
        declared, by = self.declared, self.declared_by
        if found.non_ascii == 0:
            self.encoding = declared or "utf-8"
            self.evidence = (f"{by} says {declared}; " if declared else "") + found.evidence
            return  # not final: a later batch may hold the first non-ASCII text
        self.final = True
        if declared is None or declared == found.encoding:
            self.encoding = found.encoding
            self.evidence = found.evidence
            if declared:
                self.evidence = f"{by} says {declared}, and the text agrees: {found.evidence}"
            return
        non_ascii = [s for s in samples if not s.isascii()]
        decodable = sum(_decodes(s, declared) for s in non_ascii)
        declared_valid = found.valid.get(declared)
        if declared_valid is None:
            declared_valid = encodings.valid_values(non_ascii, declared)[0]
        if found.encoding == "latin-1" or (
            decodable == len(non_ascii) and found.valid[found.encoding] <= declared_valid
        ):
            self.encoding = declared
            self.evidence = f"{by} says {declared} (kept: nothing fits better); {found.evidence}"
            return
        self.encoding = found.encoding
        broken = len(non_ascii) - decodable
        why = f"{broken} of {len(non_ascii)} values are not valid {declared}" if broken else ""
        why = why or f"only {declared_valid} of {len(non_ascii)} values read as Vietnamese in it"
        self.evidence = f"{by} says {declared}, but {why}; {found.evidence}"

    def _decide_unicode(self, strings: list[str]) -> None:
        non_ascii = [s for s in strings if not s.isascii()]
        if not non_ascii:
            self.encoding = "utf-8"
            self.evidence = (
                f"{self.format_name} stores text as UTF-8 (plain ASCII in the first "
                f"{len(strings)} text values)"
            )
            return
        self.final = True
        words = [w for s in non_ascii for w in encodings.non_ascii_words(_nfc(s))]
        as_is = sum(encodings.is_vietnamese_word(w) for w in words)
        mojibake = [encodings.mojibake_bytes(s) for s in non_ascii]
        if all(m is not None for m in mojibake):
            found = encodings.assess(mojibake)
            if found.encoding in ("tcvn3", "vni", "cp1258"):
                repaired = found.valid[found.encoding]
                as_is_values = sum(
                    all(encodings.is_vietnamese_word(w) for w in encodings.non_ascii_words(s))
                    for s in non_ascii
                )
                if repaired > as_is_values:
                    self.encoding = found.encoding
                    self.evidence = (
                        f"{self.format_name} holds Unicode text that is really "
                        f"{found.encoding} read as latin-1/cp1252 before it was saved: "
                        f"{found.evidence}"
                    )
                    return
        self.encoding = "utf-8"
        self.evidence = (
            f"{self.format_name} stores text as UTF-8: {len(non_ascii)} text values have "
            f"non-ASCII letters; {as_is} of {len(words)} such words are Vietnamese"
        )

    # -- decoding --------------------------------------------------------------------------
    def _function(self) -> Callable[[str], str]:
        encoding = self.encoding or "utf-8"
        if self.decoded:
            return _nfc
        if self.raw:
            if encoding == "tcvn3":
                return encodings.decode_tcvn3_mojibake
            if encoding == "vni":
                return encodings.decode_vni_mojibake
            if encoding == "latin-1":
                return _nfc
            return lambda s: encodings.decode(s.encode("latin-1"), encoding)
        if encoding in ("tcvn3", "vni", "cp1258"):

            def repair(s: str) -> str:
                data = encodings.mojibake_bytes(s)
                return _nfc(s) if data is None else encodings.decode(data, encoding)

            return repair
        return _nfc

    def decode_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Decode every text column and the column names; raises _MixedEncoding."""
        function = self._function()

        def safe(value: str, column: str) -> str:
            try:
                return function(value)
            except UnicodeDecodeError:
                raise _MixedEncoding(column, value) from None

        frame.columns = [
            safe(c, "(column names)").lstrip("\ufeff") if isinstance(c, str) else c
            for c in frame.columns
        ]
        for column in frame.columns:
            if not _is_text(frame[column]):
                continue
            uniques = pd.unique(frame[column].dropna())
            mapping = {u: safe(u, column) for u in uniques if isinstance(u, str)}
            if any(k != v for k, v in mapping.items()):
                frame[column] = frame[column].map(mapping, na_action="ignore")
        return frame

    def failure(self, error: _MixedEncoding, frame: pd.DataFrame, first_row: int) -> SourceError:
        """A clear error for text that is not valid in the chosen encoding."""
        where = "the column names"
        if error.column in frame.columns:
            column = frame[error.column]
            position = int(np.flatnonzero((column == error.value).to_numpy(na_value=False))[0])
            where = f"row {first_row + position}, column {error.column}"
        data = error.value.encode("latin-1") if self.raw else error.value.encode()
        guess, _ = encodings.detect_encoding([data])
        hint = f" (that value looks like {guess})" if guess not in ("latin-1",) else ""
        if self.requested == "auto":
            return SourceError(
                f"{self.path}: {where}: not valid {self.encoding} text{hint}, although "
                f"encoding: auto chose {self.encoding} from the rows before it "
                f"({self.evidence}); the file mixes encodings: set source.encoding in the job "
                f"spec ({_ENCODING_CHOICES}) or fix the file"
            )
        return SourceError(
            f"{self.path}: {where}: not valid {self.encoding} text{hint}; set source.encoding "
            f"in the job spec ({_ENCODING_CHOICES}; auto detects it)"
        )

    def batch(
        self,
        path: Path,
        first_row: int,
        frame: pd.DataFrame,
        geometry: np.ndarray | None,
        names: list[str] | None = None,
    ) -> Batch:
        self.decide(frame, names if names is not None else list(map(str, frame.columns)))
        try:
            frame = self.decode_frame(frame)
        except _MixedEncoding as exc:
            raise self.failure(exc, frame, first_row) from None
        return Batch(path, first_row, frame, geometry, self.encoding, self.evidence)


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        encodings.decode(data, encoding)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


# ---------------------------------------------------------------------------------------
# What files declare


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


# ---------------------------------------------------------------------------------------
# GDAL vector formats


def count_rows(path: Path, source: SourceSpec) -> int | None:
    """Feature count when the format knows it cheaply (for progress bars)."""
    if source.is_csv:
        return None
    try:
        return pyogrio.read_info(path, layer=source.layer, **_open_options(path))["features"]
    except Exception:
        return None


def _open_options(path: Path) -> dict[str, str]:
    """GDAL open options every open of this file needs."""
    if path.suffix.lower() in (".gml", ".xml"):
        # Never write a .gfs next to a delivered file (GDAL does by default when it has to
        # scan a GML); a .xsd or .gfs that is delivered with it is used.
        return {"WRITE_GFS": "NO"}
    return {}


def _open_info(path: Path) -> dict:
    try:
        return pyogrio.read_info(path, layer=0, **_open_options(path))
    except Exception as exc:
        raise SourceError(
            f"{path}: GDAL cannot open it as a vector dataset ({_gdal_message(exc)}); check "
            "that the file is complete and in a format GDAL reads (a shapefile needs its "
            ".shp, .shx and .dbf; a MapInfo table its .tab, .dat, .map and .id)"
        ) from None


def _gdal_message(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


def _layers(path: Path) -> list[tuple[str, str | None]]:
    options = _open_options(path)
    try:
        if not options:
            return [(str(name), geometry) for name, geometry in pyogrio.list_layers(path)]
        layers = []  # list_layers takes no open options: ask layer by layer
        while True:
            try:
                info = pyogrio.read_info(path, layer=len(layers), **options)
            except DataLayerError:
                return layers
            layers.append((info["layer_name"], info["geometry_type"]))
    except Exception as exc:
        raise SourceError(f"{path}: GDAL cannot list its layers ({_gdal_message(exc)})") from None


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


def _arrow_frame(record_batch: pa.RecordBatch, raw_strings: bool) -> pd.DataFrame:
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


def _geometries(wkb: np.ndarray) -> np.ndarray:
    """WKB → shapely; rings GDAL leaves unclosed are closed, undecodable ones become None
    (the row is then rejected as "no geometry" instead of failing the file)."""
    geometry = shapely.from_wkb(wkb, on_invalid="fix")
    if shapely.has_z(geometry).any():  # the warehouse is 2D (KML and DGN carry a Z of 0)
        geometry = shapely.force_2d(geometry)
    return geometry


def _read_ogr(path: Path, source: SourceSpec, batch_size: int) -> Iterator[Batch]:
    info = _open_info(path)
    driver = info["driver"]
    if driver == "DGN":
        yield from _read_dgn(path, source, batch_size)
        return
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
                    **_open_options(path),
                )
            )
        except Exception as exc:
            raise SourceError(
                f"{path}: GDAL cannot read layer {layer!r} ({_gdal_message(exc)})"
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
                    f"({_gdal_message(exc)}); the file is damaged or truncated"
                ) from None
            wkb = None
            if geometry_column in record_batch.schema.names:
                # kept apart from the frame, in Arrow: to_pandas() of the WKB column (an
                # Arrow extension type) would cost 0.6 s per million rows
                wkb = record_batch.column(geometry_column).cast(pa.binary())
                record_batch = record_batch.drop_columns([geometry_column])
            frame = _arrow_frame(record_batch, raw_strings=driver == "MapInfo File")
            if driver in _KML_DRIVERS:
                frame = _kml_columns(frame)
            rows = len(frame)
            batch = text.batch(path, first_row, frame, None)
            batch.wkb = wkb  # decoded into shapely geometries when first needed
            yield batch
            first_row += rows


def _kml_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """GDAL's KML driver says Description, LIBKML description: offer Description always."""
    if "description" in frame.columns and "Description" not in frame.columns:
        frame = frame.rename(columns={"description": "Description"})
    return frame


# -- DGN ----------------------------------------------------------------------------------

_DGN_LEVEL = re.compile(r"(?i)^\s*level\s*(\d+)\s*$")
_DGN_TEXT = 17  # text element
_DGN_BASE_COLUMNS = ("Type", "Level", "GraphicGroup", "ColorIndex", "Weight", "Style")


def _read_dgn(path: Path, source: SourceSpec, batch_size: int) -> Iterator[Batch]:
    """MicroStation DGN v7: one GDAL layer ("elements") of CAD elements.

    ``source.layer`` is ``elements`` (or absent) for every element as GDAL gives it, or
    ``level N`` for the elements of one level; the closed shapes among those then receive
    the text of every text element placed inside them, per level, as ``TEXT_L<level>``
    columns (a cadastral sheet: parcel boundaries on one level, their labels — parcel
    number, land-use code — on others). A DGN sheet is read whole for that matching.
    """
    level = None
    if source.layer not in (None, "elements"):
        match = _DGN_LEVEL.match(source.layer)
        if not match:
            raise SourceError(
                f"{path}: no layer {source.layer!r}; a DGN file has one layer, elements, or "
                "name a level as source.layer: level <number>"
            )
        level = int(match[1])
    try:
        with pyogrio.open_arrow(path, use_pyarrow=True) as (meta, reader):
            geometry_column = meta["geometry_name"] or "wkb_geometry"
            table = reader.read_all()
    except Exception as exc:
        raise SourceError(
            f"{path}: GDAL cannot read it as a DGN v7 file ({_gdal_message(exc)}); DGN v8 "
            "(MicroStation V8 and later) must be saved as V7 or exported to another format"
        ) from None
    frame = _arrow_frame(
        pa.RecordBatch.from_arrays(
            [c.combine_chunks() for c in table.columns], names=table.schema.names
        ),
        raw_strings=True,
    )
    geometry = _geometries(frame.pop(geometry_column).to_numpy())
    text = TextDecoder(path, source.encoding, raw=True, format_name="DGN")
    if level is not None:
        on_level = (frame["Level"] == level).to_numpy()
        if not on_level.any():
            levels = frame.groupby("Level").size()
            listing = ", ".join(f"level {lv} ({n} elements)" for lv, n in levels.items())
            raise SourceError(
                f"{path}: no element on level {level}; the file has: {listing or 'no elements'}"
            )
        labels = frame.loc[~on_level & (frame["Type"] == _DGN_TEXT).to_numpy()]
        label_points = geometry[~on_level & (frame["Type"] == _DGN_TEXT).to_numpy()]
        frame = frame.loc[on_level].reset_index(drop=True)
        geometry = geometry[on_level]
        _attach_labels(frame, geometry, labels, label_points)
    for start in range(0, max(len(frame), 1), batch_size):
        part = frame.iloc[start : start + batch_size].reset_index(drop=True)
        if part.empty and start:
            break
        yield text.batch(path, start + 1, part, geometry[start : start + batch_size])


def _attach_labels(
    frame: pd.DataFrame, geometry: np.ndarray, labels: pd.DataFrame, points: np.ndarray
) -> None:
    """Text of label elements inside each closed shape, one column per label level."""
    polygonal = np.array(
        [g is not None and g.geom_type in ("Polygon", "MultiPolygon") for g in geometry],
        dtype=bool,
    )
    if not len(labels) or not polygonal.any():
        return
    tree = shapely.STRtree(np.where(polygonal, geometry, None))
    label_index, shape_index = tree.query(points, predicate="within")
    texts = labels["Text"].to_numpy()
    label_levels = labels["Level"].to_numpy()
    for lv in sorted(set(label_levels[label_index].tolist())):
        column = np.full(len(frame), None, dtype=object)
        chosen = label_levels[label_index] == lv
        for li, si in zip(label_index[chosen], shape_index[chosen], strict=True):
            value = texts[li]
            if value is None or value != value:
                continue
            column[si] = value if column[si] is None else f"{column[si]} {value}"
        frame[f"TEXT_L{lv}"] = column


# ---------------------------------------------------------------------------------------
# CSV


def _read_csv(path: Path, source: SourceSpec, batch_size: int) -> Iterator[Batch]:
    # utf-8, cp1258 and latin-1 are decoded by pandas; auto, tcvn3 and vni are read as
    # latin-1 (byte-transparent) and decoded here.
    python_encoding = {
        "utf-8": "utf-8-sig",
        "utf-8-sig": "utf-8-sig",
        "cp1258": "cp1258",
        "latin-1": "latin-1",
    }.get(source.encoding)
    declared = declared_by = None
    with path.open("rb") as handle:
        if handle.read(3) == b"\xef\xbb\xbf":
            declared, declared_by = "utf-8", "the UTF-8 byte-order mark at its start"
    text = TextDecoder(
        path,
        source.encoding,
        raw=python_encoding is None,
        declared=declared,
        declared_by=declared_by,
        format_name="CSV",
        decoded=python_encoding is not None,
    )
    try:
        chunks = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding=python_encoding or "latin-1",
            sep=source.delimiter,
            chunksize=batch_size,
        )
        first_row = 2  # line 1 is the header
        for frame in chunks:
            frame.columns = [c.strip() for c in frame.columns]
            rows = len(frame)
            batch = text.batch(path, first_row, frame, None)
            batch.geometry = _csv_geometry(path, batch.frame, source)
            yield batch
            first_row += rows
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path}: not valid {source.encoding} text at byte {exc.start}; "
            f"set source.encoding in the job spec ({_ENCODING_CHOICES}; auto detects it)"
        ) from None
    except pd.errors.EmptyDataError:
        raise SourceError(f"{path}: the CSV file is empty (no header line)") from None
    except pd.errors.ParserError as exc:
        raise SourceError(f"{path}: not a readable CSV file: {_gdal_message(exc)}") from None


def _csv_geometry(path: Path, frame: pd.DataFrame, source: SourceSpec) -> np.ndarray | None:
    if source.wkt:
        _require_columns(path, frame, [source.wkt], "geometry.wkt")
        return shapely.from_wkt(frame.pop(source.wkt).to_numpy(), on_invalid="ignore")
    if source.x and source.y:
        _require_columns(path, frame, [source.x, source.y], "geometry.x/geometry.y")
        # Unparseable numbers become NaN and the row is rejected by validation as "no geometry".
        x = pd.to_numeric(frame[source.x].str.replace(",", ".", regex=False), errors="coerce")
        y = pd.to_numeric(frame[source.y].str.replace(",", ".", regex=False), errors="coerce")
        points = shapely.points(x.to_numpy(), y.to_numpy())
        points[np.isnan(x.to_numpy()) | np.isnan(y.to_numpy())] = None
        return points
    return None


def _require_columns(path: Path, frame: pd.DataFrame, columns: list[str], key: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SourceError(
            f"{path}: column(s) {', '.join(missing)} named in source.{key} of the job spec are "
            f"missing; the file has: {', '.join(map(str, frame.columns))} (check the "
            "delimiter too: source.delimiter)"
        )


# ---------------------------------------------------------------------------------------


def read_batches(path: Path, source: SourceSpec, batch_size: int = BATCH_SIZE) -> Iterator[Batch]:
    """Stream one delivered file as batches of decoded rows."""
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    reader = _read_csv if source.is_csv else _read_ogr
    yield from reader(path, source, batch_size)


def source_columns(path: Path, source: SourceSpec) -> list[str]:
    """Attribute column names of a file (to check a job spec's field mapping up front)."""
    batch = next(read_batches(path, source, batch_size=1), None)
    return [] if batch is None else list(map(str, batch.frame.columns))
