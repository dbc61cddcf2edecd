"""Make pygeoapi's OpenAPI document self-contained (no remote ``$ref``).

pygeoapi 0.24 points dozens of ``$ref`` at schemas.opengis.net and raw.githubusercontent.com;
a client on an offline government network (or a validator such as schemathesis) cannot resolve
them. We replace each with a local component from ``openapi_components.yml``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from sdi.errors import ConfigError

_FEATURES = "https://schemas.opengis.net/ogcapi/features/part1/1.0/openapi/ogcapi-features-1.yaml"
_TILES = "https://schemas.opengis.net/ogcapi/tiles/part1/1.0/openapi/ogcapi-tiles-1.yaml"
# remote reference → local one (the fragment is kept for the OGC API Features document)
_REMOTE = {
    _FEATURES: "#",
    "https://schemas.opengis.net/cql2/1.0/cql2.json": "#/components/schemas/cql2Expression",
    "https://raw.githubusercontent.com/opengeospatial/ogcapi-records/master/core/openapi/"
    "parameters/sortby.yaml": "#/components/parameters/sortby",
    "https://raw.githubusercontent.com/opengeospatial/ogcapi-records/master/core/openapi/"
    "parameters/q.yaml": "#/components/parameters/q",
    f"{_TILES}#/components/schemas/link": "#/components/schemas/link",
    **{
        f"{_TILES}#/components/parameters/{name}": f"#/components/parameters/{name}"
        for name in ("tileMatrixSetId", "tileMatrix", "tileRow", "tileCol")
    },
    "https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi/schemas/exception.yaml": (
        "#/components/schemas/exception"
    ),
}


@lru_cache
def _components() -> dict[str, Any]:
    return yaml.safe_load((Path(__file__).parent / "openapi_components.yml").read_text("utf-8"))


def _local(ref: str) -> str:
    if ref in _REMOTE:
        return _REMOTE[ref]
    base, _, fragment = ref.partition("#")
    if base in _REMOTE and _REMOTE[base] == "#":
        return f"#{fragment}"
    raise ConfigError(
        f"the OpenAPI document references {ref}, which has no local copy: "
        "add it to sdi/api/openapi_components.yml and sdi/api/openapi.py"
    )


def _rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _local(value)
            if key == "$ref" and isinstance(value, str) and value.startswith("http")
            else _rewrite(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(item) for item in node]
    return node


def self_contained(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every remote ``$ref`` replaced by a local component."""
    document = _rewrite(document)
    components = document.setdefault("components", {})
    for section, entries in _components().items():
        existing = components.setdefault(section, {})
        for name, definition in entries.items():
            existing.setdefault(name, definition)
    return document


def remote_references(node: Any) -> list[str]:
    """Every ``$ref`` that points outside the document (should be none)."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "$ref" and not str(v).startswith("#")]
        return found + [r for v in node.values() for r in remote_references(v)]
    if isinstance(node, list):
        return [r for item in node for r in remote_references(item)]
    return []
