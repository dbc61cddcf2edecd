"""Readers of delivered files, and the one table that says which reader takes which source.

A reader is a module of this package with

- ``read(path, source, batch_size, settings=None) -> Iterator[Batch]``: the file as a stream
  of batches of decoded rows (``common.Batch``), never the whole file in memory;
- optionally ``count(path, source) -> int | None``: its row count when the format knows it
  cheaply (for progress bars).

:data:`FORMATS` is read top to bottom; the first row that takes a source reads it. Reader
modules are imported only when chosen: rasterio is loaded for raster jobs only, and this
module imports nothing heavy (the runner imports it before it knows whether it will load).
Adding a format: see "Adding a format" in ``docs/formats.md``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from sdi.errors import SourceError

if TYPE_CHECKING:
    from sdi.etl.readers.common import Batch
    from sdi.etl.spec import SourceSpec
    from sdi.settings import Settings

BATCH_SIZE = 100_000  # rows per batch


@dataclass(frozen=True)
class Format:
    """Which sources one reader takes: every condition given must hold."""

    reader: str  # module of this package
    kinds: tuple[str, ...] = ("vector", "table")  # the job spec's ``kind``
    suffixes: tuple[str, ...] = ()  # of ``source.path`` (lower case); () takes any
    drivers: tuple[str, ...] = ()  # GDAL vector drivers that open the file; () takes any
    # files delivered beside the named one that change its meaning: part of its fingerprint
    # (a changed .dbf is a changed delivery)
    sidecars: tuple[str, ...] = ()
    # the reader's ``takes(path) -> bool`` looks at the file's first bytes (an Overpass answer
    # and a GeoJSON file are both .json)
    sniff: bool = False


FORMATS: tuple[Format, ...] = (
    Format("raster", kinds=("raster",)),  # GeoTIFF (any raster GDAL reads) → COG catalogue
    Format("csv", suffixes=(".csv", ".txt")),
    # OpenStreetMap: Overpass API answers ([out:json]); .osm.pbf and .osm go to GDAL's OSM
    # driver below (layers points, lines, multipolygons, …; other_tags expanded to columns)
    Format("overpass", suffixes=(".json", ".overpass"), sniff=True),
    Format("dgn", drivers=("DGN",)),  # MicroStation v7 sheets: levels, labels in parcels
    # every other vector format GDAL opens: Shapefile, GeoPackage, GeoJSON, KML, GML,
    # MapInfo TAB/MIF, FlatGeobuf, …
    Format(
        "ogr",
        sidecars=(".dbf", ".shx", ".prj", ".cpg", ".dat", ".id", ".map", ".mid", ".xsd", ".gfs"),
    ),
)

# Sidecar suffixes of every format (a file's sidecars are looked for before its reader is
# chosen: the fingerprint of a delivery decides whether the run loads at all).
SIDECARS: tuple[str, ...] = tuple(dict.fromkeys(s for f in FORMATS for s in f.sidecars))


def reader_for(path: Path, source: SourceSpec, *, kind: str = "vector") -> ModuleType:
    """The reader module that takes ``path`` (a file matched by ``source.path``)."""
    suffix = source.path.lower()
    candidates = [
        f for f in FORMATS if kind in f.kinds and (not f.suffixes or suffix.endswith(f.suffixes))
    ]
    candidates = [
        f
        for f in candidates
        if not f.sniff or importlib.import_module(f"{__name__}.{f.reader}").takes(path)
    ]
    sniffed = next((f for f in candidates if f.sniff), None)
    if sniffed:  # recognised by its content: no need to ask GDAL
        return importlib.import_module(f"{__name__}.{sniffed.reader}")
    if any(f.drivers for f in candidates):
        from sdi.etl.readers.ogr import driver_of  # opened once: the reader reuses it

        driver = driver_of(path)
        candidates = [f for f in candidates if not f.drivers or driver in f.drivers]
    if not candidates:
        raise SourceError(f"{path}: no reader takes a {kind} source {source.path!r}")
    return importlib.import_module(f"{__name__}.{candidates[0].reader}")


def read_batches(
    path: Path,
    source: SourceSpec,
    batch_size: int = BATCH_SIZE,
    *,
    kind: str = "vector",
    settings: Settings | None = None,
) -> Iterator[Batch]:
    """Stream one delivered file as batches of decoded rows."""
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    yield from reader_for(path, source, kind=kind).read(path, source, batch_size, settings)


def count_rows(path: Path, source: SourceSpec, *, kind: str = "vector") -> int | None:
    """The file's row count when its format knows it cheaply (for progress bars), else None."""
    try:
        reader = reader_for(path, source, kind=kind)
    except SourceError:
        return None  # reading it will say what is wrong
    count = getattr(reader, "count", None)
    return None if count is None else count(path, source)


def source_columns(path: Path, source: SourceSpec, *, kind: str = "vector") -> list[str]:
    """Attribute column names of a file (to check a job spec's field mapping up front)."""
    batch = next(read_batches(path, source, batch_size=1, kind=kind), None)
    return [] if batch is None else list(map(str, batch.frame.columns))
