"""Make pygeoapi's OpenAPI document self-contained (no remote ``$ref``).

pygeoapi 0.24 points dozens of ``$ref`` at schemas.opengis.net and raw.githubusercontent.com;
a client on an offline government network (or a validator such as schemathesis) cannot resolve
them. We replace each with a local component from ``openapi_components.yml``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from sdi.api import formats
from sdi.errors import ConfigError

_FEATURES = "https://schemas.opengis.net/ogcapi/features/part1/1.0/openapi/ogcapi-features-1.yaml"
_TILES = "https://schemas.opengis.net/ogcapi/tiles/part1/1.0/openapi/ogcapi-tiles-1.yaml"
_PROCESSES = "https://schemas.opengis.net/ogcapi/processes/part1/1.0/openapi"
_EDR = "https://schemas.opengis.net/ogcapi/edr/1.0/openapi"
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
    # OGC API - Processes and EDR (sdi.api.processes, sdi.api.edr)
    **{
        f"{_PROCESSES}/responses/{name}.yaml": f"#/components/responses/{name}"
        for name in ("ExecuteAsync", "NotFound", "ProcessList", "ServerError")
    },
    f"{_PROCESSES}/schemas/execute.yaml": "#/components/schemas/execute",
    **{
        f"{_EDR}/parameters/{name}.yaml": f"#/components/parameters/{name}"
        for name in ("areaCoords", "bbox", "locationId", "parameter-name", "positionCoords", "z")
    },
    f"{_EDR}/schemas/coverageJSON.yaml": "#/components/schemas/coverageJSON",
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


# -- the document says what the server does ------------------------------------------------
# RFC 3339 instants (a date, or a date-time with its offset) and intervals with open ends
# (".." or empty), calendar-exact (no 31 April, 29 February in leap years only), years
# 1000-9999: every string the pattern admits is a datetime the server accepts, and
# sdi.api.contract refuses every other one.
_YEAR = r"[1-9][0-9]{3}"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_DAY = r"(?:[1-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[13579][26])00)-02-29"
_TIME = (
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(?:Z|[+-](?:0[0-9]|1[0-5]):[0-5][0-9])"  # PostgreSQL takes offsets to ±15:59
)
_INSTANT = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})(?:{_TIME})?"
DATETIME_PATTERN = rf"^(?:{_INSTANT}|(?:{_INSTANT}|\.\.)?/(?:{_INSTANT}|\.\.)?)$"
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
MAX_OFFSET = 2**63 - 1


def resolve(document: dict[str, Any], node: Any) -> Any:
    """``node``, or what its local ``$ref`` (and theirs) point to in ``document``."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def table_collections(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, feature provider) of every collection served from a warehouse table or view."""
    for name, resource in resources.items():
        if resource.get("type") != "collection":
            continue
        feature = next(
            (p for p in resource.get("providers", []) if p.get("type") == "feature"), None
        )
        if feature is not None and (feature.get("data") or {}).get("table"):
            yield name, feature


def _f_values(document: dict[str, Any], parameters: list) -> list[str]:
    for raw in parameters:
        parameter = resolve(document, raw)
        if parameter.get("name") == "f" and parameter.get("in") == "query":
            return list(resolve(document, parameter.get("schema", {})).get("enum", []))
    return []


def _ok_response(document: dict[str, Any], path: str, operation: dict[str, Any]) -> dict:
    """The 200 response with a media type for every ``f`` the operation offers
    (:mod:`sdi.api.formats`)."""
    response = copy.deepcopy(resolve(document, operation["responses"].get("200", {})))
    response.setdefault("description", "successful operation")
    content = response.setdefault("content", {})
    route = formats.route_of(path)
    if route == formats.OPENAPI:  # the document itself (whatever f but html asks for) or Swagger UI
        response["content"] = {
            fmt.media_type: copy.deepcopy(fmt.content or {"schema": {"type": "object"}})
            for fmt in formats.served_on(route)
        }
        return response
    # the schema of what pygeoapi (or our module) documents, for a format of the same answer
    first: dict[str, Any] = next(iter(content.values()), {})
    schema = first.get("schema", {"type": "object"})
    for name in _f_values(document, operation.get("parameters", [])):
        fmt = formats.find(name, route)
        if fmt is not None:
            content.setdefault(fmt.media_type, copy.deepcopy(fmt.content or {"schema": schema}))
    return response


def _crs_parameter(name: str, uris: list[str], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "description": description,
        "schema": {"type": "string", "enum": uris},
    }


def _collection_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "collections" and parts[2] else None


def conform(document: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Make the document say what the server does (checked by schemathesis in the tests).

    pygeoapi 0.24's document and its behaviour disagree in many places; sdi.api.contract
    enforces the document's parameter schemas, so they have to be exact:

    - every format an operation offers through ``f`` has its media type in the 200 response
      (JSON-LD, HTML, CSV; JSON Schema for queryables and schemas; the OpenAPI media type:
      :mod:`sdi.api.formats`);
    - ``crs`` / ``bbox-crs`` list the collection's own CRSs (an ``enum``, not any URI);
    - ``datetime`` has a calendar-exact RFC 3339 pattern; ``offset`` a 64-bit maximum;
      ``lang`` any language tag (others fall back to the server's language, as pygeoapi does);
    - the items of feature collections declare ``cursor`` (the keyset of our next links);
      a catalogue (records) has no CSV;
    - ``/conformance`` answers a conformance declaration, tiles a tileset list and tiles may
      be 204 (no feature there);
    - the bbox's corners may come in any order (sdi.api.provider's reading of them).
    """
    from pygeoapi.crs import get_supported_crs_list

    document = copy.deepcopy(document)
    components = document.setdefault("components", {})
    parameters = components.setdefault("parameters", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_components()["schemas"])  # ours replace pygeoapi's stale ones (tiles)
    if "lang" in parameters:
        # Vietnamese first (pygeoapi's server.languages: vi, en)
        parameters["lang"]["schema"] = {"type": "string", "default": "vi"}
    if "offset" in parameters:
        parameters["offset"]["schema"]["maximum"] = MAX_OFFSET
    parameters["datetime"] = copy.deepcopy(_components()["parameters"]["datetime"])
    parameters["datetime"]["schema"]["pattern"] = DATETIME_PATTERN
    if "bbox" in parameters:  # ours: 4 or 6 numbers (pygeoapi's admits 5), corners in any order
        parameters["bbox"] = copy.deepcopy(_components()["parameters"]["bbox"])

    for parameter in parameters.values():  # form style: an empty value is an empty array
        schema = parameter.get("schema", {})
        if parameter.get("in") == "query" and schema.get("type") == "array":
            schema.setdefault("minItems", 1)
    resources = config.get("resources") or {}
    # the change feed's paths; what the EDR and Processes operations really answer
    from sdi.api import changes, downloads, edr, processes

    document.setdefault("paths", {}).update(changes.openapi_paths(resources))
    document["paths"].update(downloads.openapi_paths(resources))  # /collections/{id}/download
    edr.document(document, resources)
    processes.document(document)
    for path, item in (document.get("paths") or {}).items():
        operation = (item or {}).get("get")
        if not operation:
            continue
        if path == "/conformance":
            operation["responses"]["200"] = copy.deepcopy(
                _components()["responses"]["ConformanceDeclaration"]
            )
        elif "200" in operation.get("responses", {}):
            operation["responses"]["200"] = _ok_response(document, path, operation)
        for raw in operation.get("parameters", []):  # inline ones (properties, vendor arrays)
            schema = raw.get("schema", {}) if "$ref" not in raw else {}
            if raw.get("in") == "query" and schema.get("type") == "array":
                schema.setdefault("minItems", 1)
        collection = _collection_of(path)
        resource = resources.get(collection or "")
        if not resource:
            continue
        providers = resource.get("providers") or []
        feature = next((p for p in providers if p.get("type") in ("feature", "record")), None)
        if path.endswith("/items") or path.endswith("/items/{featureId}"):
            _items_parameters(document, operation, feature, get_supported_crs_list, path)
        one = (document["paths"].get(f"{path}/{{featureId}}") or {}).get("get", {})
        if path.endswith("/items") and one.get("operationId") and "200" in operation["responses"]:
            # OpenAPI links: a client (or schemathesis) learns where a feature's id comes from
            operation["responses"]["200"].setdefault("links", {})["item"] = {
                "operationId": one["operationId"],
                "parameters": {"featureId": "$response.body#/features/0/id"},
                "description": "The first feature of the page, by its id.",
            }
        if "/tiles/" in path and path.endswith("{tileCol}"):
            operation["responses"].setdefault(
                "204", {"description": "The tile has no features (an empty tile)."}
            )
    bilingual(document, config)
    return document


def _both(vi: str, en: str) -> str:
    return vi if vi == en else f"{vi}\n\n*English:* {en}"


def bilingual(document: dict[str, Any], config: dict[str, Any]) -> None:
    """Give the document's own texts in Vietnamese and English (in place).

    pygeoapi writes one document, in the server's first language (Vietnamese): the service's
    and the collections' descriptions get their English after them, and the operations'
    summaries name a collection or process as "Vietnamese title (English title)".
    """
    from sdi.api.processes import PROCESS_METADATA
    from sdi.settings import get_settings

    settings = get_settings()
    info = document.setdefault("info", {})
    info["description"] = _both(settings.service_description_vi, settings.service_description)
    info["x-title-en"] = settings.service_title
    titles: dict[str, tuple[str, str]] = {}
    descriptions: dict[str, tuple[str, str]] = {}
    for name, resource in (config.get("resources") or {}).items():
        title, description = resource.get("title"), resource.get("description")
        if resource.get("type") == "process":
            title = PROCESS_METADATA["title"] if name == PROCESS_METADATA["id"] else None
            description = PROCESS_METADATA["description"] if title else None
        if isinstance(title, dict) and {"vi", "en"} <= set(title):
            titles[name] = (title["vi"], title["en"])
        if isinstance(description, dict) and {"vi", "en"} <= set(description):
            descriptions[name] = (description["vi"], description["en"])
    for tag in document.get("tags") or []:
        if tag.get("name") in descriptions:
            tag["description"] = _both(*descriptions[tag["name"]])
    for path, item in (document.get("paths") or {}).items():
        parts = path.split("/")
        name = parts[2] if len(parts) > 2 and parts[1] in ("collections", "processes") else None
        if name not in titles:
            continue
        vi, en = titles[name]
        for operation in (item or {}).values():
            if not isinstance(operation, dict):
                continue
            for key in ("summary", "description"):
                text = operation.get(key)
                if isinstance(text, str) and vi in text and en not in text:
                    operation[key] = text.replace(vi, f"{vi} ({en})")


def _items_parameters(
    document: dict[str, Any],
    operation: dict[str, Any],
    provider: dict[str, Any] | None,
    supported: Any,
    path: str,
) -> None:
    if provider is None:
        return
    uris = list(supported(provider))
    out = []
    for raw in operation.get("parameters", []):
        ref = raw.get("$ref", "") if isinstance(raw, dict) else ""
        name = ref.rsplit("/", 1)[-1] if ref else raw.get("name")
        if name == "crs":
            out.append(_crs_parameter("crs", uris, "The CRS of the coordinates in the response."))
        elif name == "bbox-crs":
            out.append(_crs_parameter("bbox-crs", uris, "The CRS of the bbox coordinates."))
        elif name == "f" and not ref:  # the formats this provider's items have (no CSV records)
            route, kind = formats.route_of(path), provider.get("type")
            listed = raw.get("schema", {}).get("enum", [])
            offered = [v for v in listed if formats.find(v, route, kind) is not None]
            if offered == listed:
                out.append(raw)
            else:
                f = copy.deepcopy(raw)
                f["schema"]["enum"] = offered
                out.append(f)
        else:
            out.append(raw)
    names = _property_names(document, out)
    if names:  # sortby: the published properties (pygeoapi refuses others with a 400)
        for i, raw in enumerate(out):
            if resolve(document, raw).get("name") == "sortby":
                sortby = copy.deepcopy(resolve(document, raw))
                keys = [f"{sign}{name}" for name in names for sign in ("", "+", "-")]
                sortby["schema"] = {"type": "array", "minItems": 1, "items": {"enum": keys}}
                out[i] = sortby
    if path.endswith("/items") and provider.get("type") == "feature":
        out.append(copy.deepcopy(_components()["parameters"]["cursor"]))
        out[-1]["schema"]["pattern"] = CURSOR_PATTERN
    operation["parameters"] = out


def _property_names(document: dict[str, Any], parameters: list) -> list[str]:
    """The property names the ``properties`` parameter of an operation offers."""
    for raw in parameters:
        parameter = resolve(document, raw)
        if parameter.get("name") == "properties":
            items = resolve(document, parameter.get("schema", {})).get("items", {})
            return list(items.get("enum", []))
    return []
