"""MicroStation DGN v7 sheets (cadastral maps), read with GDAL's DGN driver."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
import shapely

from sdi.errors import SourceError
from sdi.etl.readers import ogr
from sdi.etl.readers.common import Batch, TextDecoder, geometries, short_message
from sdi.etl.readers.ogr import arrow_frame
from sdi.etl.spec import SourceSpec
from sdi.settings import Settings

_DGN_LEVEL = re.compile(r"(?i)^\s*level\s*(\d+)\s*$")
_DGN_TEXT = 17  # text element
_DGN_BASE_COLUMNS = ("Type", "Level", "GraphicGroup", "ColorIndex", "Weight", "Style")


def count(path: Path, source: SourceSpec) -> int | None:
    """Elements in the file (how many lie on one level is known only once it is read)."""
    return ogr.count(path, source) if source.layer in (None, "elements") else None


def read(
    path: Path, source: SourceSpec, batch_size: int, settings: Settings | None = None
) -> Iterator[Batch]:
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
            f"{path}: GDAL cannot read it as a DGN v7 file ({short_message(exc)}); DGN v8 "
            "(MicroStation V8 and later) must be saved as V7 or exported to another format"
        ) from None
    frame = arrow_frame(
        pa.RecordBatch.from_arrays(
            [c.combine_chunks() for c in table.columns], names=table.schema.names
        ),
        raw_strings=True,
    )
    geometry = geometries(frame.pop(geometry_column).to_numpy())
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
    # numpy's stubs take no None (an object scalar) as the third argument of where()
    tree = shapely.STRtree(np.where(polygonal, geometry, None))  # type: ignore[call-overload]
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
