"""CSV (and delimited .txt) files, read with pandas in chunks; points from x/y columns or WKT.

Text is read as latin-1 (byte-transparent) and decoded in ``common.TextDecoder`` unless the
job spec names an encoding pandas decodes itself (utf-8, cp1258, latin-1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from sdi.errors import SourceError
from sdi.etl.readers.common import ENCODING_CHOICES, Batch, TextDecoder, short_message
from sdi.etl.spec import SourceSpec
from sdi.settings import Settings


def read(
    path: Path, source: SourceSpec, batch_size: int, settings: Settings | None = None
) -> Iterator[Batch]:
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
            f"set source.encoding in the job spec ({ENCODING_CHOICES}; auto detects it)"
        ) from None
    except pd.errors.EmptyDataError:
        raise SourceError(f"{path}: the CSV file is empty (no header line)") from None
    except pd.errors.ParserError as exc:
        raise SourceError(f"{path}: not a readable CSV file: {short_message(exc)}") from None


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
