"""Hazard rasters (flood depth, elevation): validated, stored as cloud-optimised GeoTIFFs.

Why COG files plus a catalogue table rather than PostGIS raster: rasterio reads windows of a
COG directly for zonal statistics, any GDAL client can open it, and the warehouse stays small;
``hazard.rasters`` records each raster's footprint, checksum and lineage like any feature.
Files are content-addressed, so a failed run leaves at most an unreferenced file behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import rasterio.shutil
import shapely
from rasterio.warp import transform_geom

from sdi.errors import SourceError
from sdi.etl.readers.common import Batch
from sdi.etl.spec import SourceSpec
from sdi.settings import Settings, get_settings


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read(
    path: Path, source: SourceSpec, batch_size: int, settings: Settings | None = None
) -> Iterator[Batch]:
    """One catalogue row for one raster file, its footprint in the storage CRS."""
    settings = settings or get_settings()
    try:
        raster = rasterio.open(path)
    except rasterio.RasterioIOError as exc:
        raise SourceError(f"{path}: not a raster GDAL can read: {exc}") from exc
    with raster, rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
        if raster.crs is None:
            raise SourceError(f"{path}: the raster has no CRS; deliver it with one (GeoTIFF keys)")
        sha256 = _sha256(path)
        store = settings.state_dir / "rasters"
        store.mkdir(parents=True, exist_ok=True)
        cog = store / f"{path.stem}-{sha256[:12]}.tif"
        if not cog.exists():
            partial = cog.with_suffix(".partial.tif")
            rasterio.shutil.copy(raster, partial, driver="COG", COMPRESS="DEFLATE")
            partial.rename(cog)
        footprint = transform_geom(
            raster.crs,
            f"EPSG:{settings.storage_srid}",
            shapely.geometry.mapping(shapely.box(*raster.bounds).segmentize(max(raster.res) * 16)),
        )
        frame = pd.DataFrame(
            {
                "name": [path.stem],
                "path": [str(cog)],
                "sha256": [sha256],
                "source_srid": [raster.crs.to_epsg()],
                "width": [raster.width],
                "height": [raster.height],
                "pixel_size": [float(raster.res[0])],
                "nodata": [raster.nodata],
                "unit": [raster.tags(1).get("unit") or raster.units[0] or None],
            }
        )
        yield Batch(path, 1, frame, np.array([shapely.geometry.shape(footprint)], dtype=object))
