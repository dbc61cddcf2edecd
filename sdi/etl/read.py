"""Read delivered files as a stream of batches (never the whole file in memory).

Vector formats GDAL knows (Shapefile, GeoPackage, GeoJSON, KML, GML, MapInfo, DGN) are read
as Arrow batches with pyogrio; CSV with pandas. Each batch carries its attribute frame with
text already decoded to Unicode, the geometries in the source CRS, and the source row number
of its first row so rejects can point back at the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely

from sdi.errors import SourceError
from sdi.etl.encodings import decode_tcvn3_mojibake
from sdi.etl.spec import SourceSpec

BATCH_SIZE = 100_000

# Drivers whose attribute bytes carry no reliable encoding (GDAL would guess or assume).
_LEGACY_BYTE_DRIVERS = {"ESRI Shapefile", "MapInfo File", "DGN"}


@dataclass
class Batch:
    path: Path
    first_row: int  # source row number of frame.iloc[0] (CSV: line number; others: feature)
    frame: pd.DataFrame
    geometry: np.ndarray | None  # shapely geometries in the source CRS


def _decode_text(frame: pd.DataFrame, encoding: str) -> pd.DataFrame:
    """TCVN3 arrives as latin-1 text; turn it into Unicode (vectorised per column)."""
    if encoding != "tcvn3":
        return frame
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].map(
                lambda v: decode_tcvn3_mojibake(v) if isinstance(v, str) else v
            )
    return frame


def count_rows(path: Path, source: SourceSpec) -> int | None:
    """Feature count when the format knows it cheaply (for progress bars)."""
    if source.is_csv:
        return None
    try:
        return pyogrio.read_info(path, layer=source.layer)["features"]
    except Exception:
        return None


def _read_ogr(path: Path, source: SourceSpec, batch_size: int) -> Iterator[Batch]:
    try:
        info = pyogrio.read_info(path, layer=source.layer)
    except Exception as exc:
        raise SourceError(f"{path}: GDAL cannot open it as a vector dataset: {exc}") from exc
    options = {}
    if source.encoding in ("tcvn3", "latin-1") and info["driver"] in _LEGACY_BYTE_DRIVERS:
        options["encoding"] = "latin1"  # raw bytes through unchanged; decoded below
    elif source.encoding == "cp1258" and info["driver"] in _LEGACY_BYTE_DRIVERS:
        options["encoding"] = "cp1258"
    first_row = 1
    with pyogrio.open_arrow(
        path, layer=source.layer, batch_size=batch_size, use_pyarrow=True, **options
    ) as (meta, reader):
        geometry_column = meta["geometry_name"] or "wkb_geometry"
        for record_batch in reader:
            frame = record_batch.to_pandas()
            geometry = None
            if geometry_column in frame:
                geometry = shapely.from_wkb(frame.pop(geometry_column).to_numpy())
            yield Batch(path, first_row, _decode_text(frame, source.encoding), geometry)
            first_row += len(frame)


def _read_csv(path: Path, source: SourceSpec, batch_size: int) -> Iterator[Batch]:
    encoding = {"utf-8": "utf-8-sig", "tcvn3": "latin-1"}.get(source.encoding, source.encoding)
    try:
        chunks = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding=encoding,
            sep=source.delimiter,
            chunksize=batch_size,
        )
        first_row = 2  # line 1 is the header
        for frame in chunks:
            frame.columns = [c.strip() for c in frame.columns]
            geometry = _csv_geometry(path, frame, source, first_row)
            yield Batch(path, first_row, _decode_text(frame, source.encoding), geometry)
            first_row += len(frame)
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{path}: not valid {source.encoding} text at byte {exc.start}; "
            "set source.encoding in the job spec (utf-8, cp1258, tcvn3, latin-1)"
        ) from exc
    except pd.errors.ParserError as exc:
        raise SourceError(f"{path}: not a readable CSV file: {exc}") from exc


def _csv_geometry(
    path: Path, frame: pd.DataFrame, source: SourceSpec, first_row: int
) -> np.ndarray | None:
    if source.wkt:
        _require_columns(path, frame, [source.wkt])
        return shapely.from_wkt(frame.pop(source.wkt).to_numpy(), on_invalid="ignore")
    if source.x and source.y:
        _require_columns(path, frame, [source.x, source.y])
        # Unparseable numbers become NaN and the row is rejected by validation as "no geometry".
        x = pd.to_numeric(frame[source.x].str.replace(",", ".", regex=False), errors="coerce")
        y = pd.to_numeric(frame[source.y].str.replace(",", ".", regex=False), errors="coerce")
        points = shapely.points(x.to_numpy(), y.to_numpy())
        points[np.isnan(x.to_numpy()) | np.isnan(y.to_numpy())] = None
        return points
    return None


def _require_columns(path: Path, frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SourceError(
            f"{path}: column(s) {', '.join(missing)} named in the job spec are missing; "
            f"the file has: {', '.join(frame.columns)}"
        )


def read_batches(path: Path, source: SourceSpec, batch_size: int = BATCH_SIZE) -> Iterator[Batch]:
    """Stream one delivered file as batches of decoded rows."""
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    reader = _read_csv if source.is_csv else _read_ogr
    yield from reader(path, source, batch_size)


def source_columns(path: Path, source: SourceSpec) -> list[str]:
    """Attribute column names of a file (to check a job spec's field mapping up front)."""
    if source.is_csv:
        encoding = {"utf-8": "utf-8-sig", "tcvn3": "latin-1"}.get(source.encoding, source.encoding)
        header = pd.read_csv(path, nrows=0, encoding=encoding, sep=source.delimiter)
        return [c.strip() for c in header.columns]
    return list(pyogrio.read_info(path, layer=source.layer)["fields"])
