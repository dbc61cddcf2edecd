"""OpenStreetMap extracts from the Overpass API (``[out:json]``), as GDAL's OSM driver reads
``.osm.pbf``: layers ``points`` (tagged nodes), ``lines`` (open ways, and closed ways that are
not areas) and ``multipolygons`` (closed area ways and ``type=multipolygon`` relations).

Columns: ``osm_id`` (``node/123``, ``way/45``, ``relation/6``), ``osm_type`` and one column per
tag key (``name``, ``highway``, ``addr:street``, …). Geometry comes from the elements'
``geometry`` (``out geom``) or from the nodes the extract holds (``out body; >; out skel``).
Coordinates are WGS 84: ``source.srid: 4326``. Text is UTF-8 JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from sdi.errors import SourceError
from sdi.etl.readers.common import Batch
from sdi.etl.spec import SourceSpec
from sdi.settings import Settings

LAYERS = ("points", "lines", "multipolygons")
# Closed ways with one of these tags are areas (a simplified osmconf.ini / id-tagging rule).
_AREA_KEYS = {
    "building", "landuse", "amenity", "leisure", "natural", "place", "shop", "tourism",
    "boundary", "water", "man_made", "military", "aeroway", "historic", "office", "parking",
}  # fmt: skip


def takes(path: Path) -> bool:
    """An Overpass JSON answer (sniffed from its first bytes), not a GeoJSON file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return b'"elements"' in head and (b"Overpass" in head or b'"osm3s"' in head)


def _load(path: Path) -> list[dict]:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{path}: not a readable Overpass JSON file ({exc})") from None
    elements = data.get("elements") if isinstance(data, dict) else None
    if not isinstance(elements, list):
        raise SourceError(f"{path}: an Overpass JSON file has an 'elements' list; this has none")
    return elements


def _is_area(element: dict, ring: list) -> bool:
    tags = element.get("tags") or {}
    if len(ring) < 4 or ring[0] != ring[-1] or tags.get("area") == "no":
        return False
    return tags.get("area") == "yes" or bool(_AREA_KEYS & set(tags))


def _way_coordinates(element: dict, nodes: dict[int, tuple[float, float]]) -> list | None:
    if element.get("geometry"):
        return [(p["lon"], p["lat"]) for p in element["geometry"] if p]
    refs = element.get("nodes") or []
    points = [nodes.get(ref) for ref in refs]
    return None if not points or any(p is None for p in points) else points


def _multipolygon(element: dict, ways: dict[int, list]) -> shapely.Geometry | None:
    lines = []
    for member in element.get("members", []):
        if member.get("type") != "way" or member.get("role") not in ("outer", "inner", ""):
            continue
        coordinates = (
            [(p["lon"], p["lat"]) for p in member["geometry"] if p]
            if member.get("geometry")
            else ways.get(member.get("ref"))
        )
        if coordinates and len(coordinates) >= 2:
            lines.append(shapely.LineString(coordinates))
    if not lines:
        return None
    polygons = shapely.get_parts(shapely.polygonize(lines))
    if not len(polygons):
        return None
    # inner rings come out as polygons of their own: the symmetric difference keeps the holes
    shape = polygons[0]
    for polygon in polygons[1:]:
        shape = shape.symmetric_difference(polygon)
    return shapely.MultiPolygon(
        [p for p in shapely.get_parts(shape) if isinstance(p, shapely.Polygon)]
    )


def features(path: Path) -> dict[str, list[tuple[str, str, dict, shapely.Geometry | None]]]:
    """Layer → (osm_id, osm_type, tags, geometry) of the file's elements."""
    elements = _load(path)
    nodes = {
        e["id"]: (e["lon"], e["lat"]) for e in elements if e.get("type") == "node" and "lat" in e
    }
    ways: dict[int, list] = {}
    layers: dict[str, list] = {name: [] for name in LAYERS}
    for e in elements:
        kind, tags = e.get("type"), e.get("tags") or {}
        if kind == "way":
            coordinates = _way_coordinates(e, nodes)
            if coordinates:
                ways[e["id"]] = coordinates
    for e in elements:
        kind, tags = e.get("type"), e.get("tags") or {}
        if not tags:
            continue  # untagged nodes and ways are parts of other features
        osm_id = f"{kind}/{e.get('id')}"
        if kind == "node":
            point = shapely.Point(e["lon"], e["lat"]) if "lat" in e else None
            layers["points"].append((osm_id, kind, tags, point))
        elif kind == "way":
            coordinates = ways.get(e["id"])
            if coordinates and _is_area(e, coordinates):
                geometry = shapely.MultiPolygon([shapely.Polygon(coordinates)])
                layers["multipolygons"].append((osm_id, kind, tags, geometry))
            else:
                line = (
                    shapely.LineString(coordinates)
                    if coordinates and len(coordinates) > 1
                    else None
                )
                layers["lines"].append((osm_id, kind, tags, line))
        elif kind == "relation" and tags.get("type") in ("multipolygon", "boundary"):
            layers["multipolygons"].append((osm_id, kind, tags, _multipolygon(e, ways)))
    return layers


def _layer(path: Path, source: SourceSpec, layers: dict[str, list]) -> str:
    if source.layer is not None:
        if source.layer not in LAYERS:
            raise SourceError(
                f"{path}: no layer {source.layer!r}; an OSM extract has: {', '.join(LAYERS)}"
            )
        return source.layer
    present = [name for name in LAYERS if layers[name]]
    if len(present) == 1:
        return present[0]
    raise SourceError(
        f"{path}: the OSM extract has {', '.join(f'{len(layers[n])} {n}' for n in LAYERS)}; "
        "name the layer to load in source.layer (points, lines or multipolygons)"
    )


def count(path: Path, source: SourceSpec) -> int | None:
    return None  # the whole file would have to be parsed


def read(
    path: Path, source: SourceSpec, batch_size: int, settings: Settings | None = None
) -> Iterator[Batch]:
    layers = features(path)
    rows = layers[_layer(path, source, layers)]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        frame = pd.DataFrame(
            [{"osm_id": osm_id, "osm_type": kind, **tags} for osm_id, kind, tags, _ in chunk]
        )
        frame = frame.astype(object).where(frame.notna(), None)
        geometry = np.array([g for *_, g in chunk], dtype=object)
        yield Batch(path, start + 1, frame, geometry, "utf-8", "Overpass JSON is UTF-8")
