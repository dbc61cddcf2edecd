"""Published collections, one YAML file each in ``layers/``, checked against a JSON Schema.

The whole layer model: every option a layer file can carry is a typed field of :class:`Layer`,
read and checked once here. The API, ``sdi keys``, ``sdi publish`` and the QGIS project use
these objects and never re-read the files. This module imports only the settings and the
declarative loader, so anything may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdi.declarative import load_checked
from sdi.errors import ConfigError
from sdi.settings import Settings, get_settings


@dataclass(frozen=True)
class EdrParameter:
    """A column of the readings published as an EDR parameter."""

    title: str
    unit: str  # UCUM symbol, e.g. m
    description: str | None = None


@dataclass(frozen=True)
class Edr:
    """OGC API EDR of a layer's points: a time series each, from a table of readings."""

    readings: str  # schema.table, one row per location and instant
    location_key: str  # column of both the layer and the readings naming the location
    time: str  # column of the readings with the instant
    parameters: dict[str, EdrParameter]
    # None: not set in the file (the EDR provider's own defaults apply)
    position_tolerance_m: float | None = None
    max_values: int | None = None


@dataclass(frozen=True)
class Layer:
    id: str
    path: Path
    title: str
    description: str
    table: str | None
    properties: tuple[str, ...]
    kind: str = "features"
    keywords: tuple[str, ...] = ()
    domain: str | None = None
    id_field: str = "id"
    geometry_field: str = "geom"
    time_field: str | None = None
    title_field: str | None = None
    personal: tuple[str, ...] = ()
    publish_personal: bool = False
    access: str = "public"
    departments: tuple[str, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)
    # OGC API Tiles: {"min_zoom": …, "max_zoom": …}; empty when the layer has no tiles
    tiles: dict[str, int] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    # QGIS style name (layers/styles/<style>.qml); None: a plain default by geometry type
    style: str | None = None
    # OGC API Features Part 4 writes through this provider (an sdi.api plugin); None: read-only
    editable_provider: str | None = None
    # OGC API EDR of the layer's points; None: no EDR
    edr: Edr | None = None
    # other languages by ISO 639-1 code: {"vi": {"title": …, "description": …, "keywords": […]}}
    i18n: dict[str, dict[str, Any]] = field(default_factory=dict)
    qgis: dict[str, Any] = field(default_factory=dict)  # the QGIS project: {"visible": bool}

    @property
    def editable(self) -> bool:
        """Accepts writes (``editable: {provider: …}`` in its file)."""
        return self.editable_provider is not None

    @property
    def published_properties(self) -> tuple[str, ...]:
        return self.properties


def load_layer(path: Path) -> Layer:
    data = load_checked(path, "layer.schema.json")
    personal = tuple(data.get("personal", []))
    leaked = [p for p in data.get("properties", []) if p in personal]
    if leaked and not data.get("publish_personal", False):
        raise ConfigError(
            f"{path}: properties {', '.join(leaked)} are marked personal; remove them from "
            "`properties` or set `publish_personal: true` if this layer may show them"
        )
    source = data.get("source", {})
    return Layer(
        id=path.stem,
        path=path,
        title=data["title"],
        description=" ".join(data["description"].split()),
        kind=data.get("kind", "features"),
        table=source.get("table"),
        properties=tuple(data.get("properties", [])),
        keywords=tuple(data.get("keywords", [])),
        domain=data.get("domain"),
        id_field=source.get("id", "id"),
        geometry_field=source.get("geometry", "geom"),
        time_field=source.get("time"),
        title_field=source.get("title_field"),
        personal=personal,
        publish_personal=data.get("publish_personal", False),
        access=data.get("access", "public"),
        departments=tuple(data.get("departments", [])),
        limits=data.get("limits", {}),
        tiles=_tiles(path, data.get("tiles", False)),
        metadata=data.get("metadata", {}),
        style=_style(path, data.get("style")),
        editable_provider=(data.get("editable") or {}).get("provider"),
        edr=_edr(data.get("edr")),
        i18n=data.get("i18n", {}),
        qgis=data.get("qgis", {}),
    )


def _edr(data: dict[str, Any] | None) -> Edr | None:
    if not data:
        return None
    return Edr(
        readings=data["readings"],
        location_key=data["location_key"],
        time=data["time"],
        parameters={
            name: EdrParameter(p["title"], p["unit"], p.get("description"))
            for name, p in data["parameters"].items()
        },
        position_tolerance_m=data.get("position_tolerance_m"),
        max_values=data.get("max_values"),
    )


def _style(path: Path, name: str | None) -> str | None:
    if name is not None and not (path.parent / "styles" / f"{name}.qml").is_file():
        available = sorted(p.stem for p in (path.parent / "styles").glob("*.qml"))
        raise ConfigError(
            f"{path}: style: {name}: no file styles/{name}.qml next to the layer files "
            f"(styles there: {', '.join(available) or 'none'})"
        )
    return name


TILE_ZOOMS = {"min_zoom": 12, "max_zoom": 20}  # `tiles: true`


def _tiles(path: Path, value: bool | dict[str, int]) -> dict[str, int]:
    if value is False:
        return {}
    zooms = dict(TILE_ZOOMS) if value is True else {**TILE_ZOOMS, **value}
    if zooms["min_zoom"] > zooms["max_zoom"]:
        raise ConfigError(
            f"{path}: tiles.min_zoom ({zooms['min_zoom']}) is above tiles.max_zoom "
            f"({zooms['max_zoom']})"
        )
    return zooms


def load_layers(settings: Settings | None = None) -> list[Layer]:
    """Every layer definition, sorted by id; all problems of all files in one error."""
    settings = settings or get_settings()
    layers, problems = [], []
    for path in sorted(settings.layers_dir.glob("*.yml")):
        try:
            layers.append(load_layer(path))
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return layers
