"""Every change we make to pygeoapi's own behaviour, applied once by :func:`apply`.

pygeoapi is pinned (0.24.0, pyproject). Our providers and processes plug in by dotted path;
what a plugin cannot change is patched here, in one place, each patch naming the pygeoapi
version it was written for and why. :func:`apply` is called by :func:`sdi.api.app.build` (at
import of the served app in every worker, before its first request); it is idempotent.

On a pygeoapi upgrade, check each patch below against the new release and drop those it
no longer needs.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from functools import lru_cache
from typing import Any

from sdi.api.bbox import corners_in_order
from sdi.api.geojson import FeatureTexts

PYGEOAPI_VERSION = "0.24.0"
_applied = False
_lock = threading.Lock()


def apply() -> None:
    """Install every patch below into pygeoapi's modules (once per process)."""
    global _applied
    with _lock:
        if _applied:
            return
        from pygeoapi.api import environmental_data_retrieval, itemtypes

        # pygeoapi 0.24.0: the items handler looks these up in its own module per request.
        itemtypes.to_json = to_json
        _patch_json_writers()
        _patch_csv()
        _patch_exception_log()
        itemtypes.transform_bbox = transform_bbox
        itemtypes.validate_bbox = validate_bbox
        itemtypes.validate_datetime = validate_datetime
        environmental_data_retrieval.validate_bbox = validate_bbox  # /locations?bbox= as /items
        _patch_jsonld_templates()
        _patch_job_functions()
        _patch_plugin_locale()
        _applied = True


# -- items: bbox, datetime, JSON writing -----------------------------------------------------
def validate_bbox(value: str | None = None) -> list[float]:
    """pygeoapi 0.24.0's ``validate_bbox`` without its order checks, with finite numbers only.

    Why: pygeoapi refuses a bbox whose corners are not (south-west, north-east) even where
    the CRS orders its axes otherwise, and accepts ``nan``; the order is the CRS's business
    (:func:`sdi.api.bbox.corners_in_order`).
    """
    if value is None:
        return []
    parts = value.split(",")
    if len(parts) not in (4, 6):
        raise ValueError(
            "bbox should be either 4 values (minx,miny,maxx,maxy) "
            "or 6 values (minx,miny,minz,maxx,maxy,maxz)"
        )
    try:
        bbox = [float(v) for v in parts]
    except ValueError:
        raise ValueError("bbox values must be numbers") from None
    if not all(math.isfinite(v) for v in bbox):
        raise ValueError("bbox values must be finite numbers")
    return bbox


def validate_datetime(resource_def: dict, datetime_: str | None = None) -> str | None:
    """pygeoapi 0.24.0's ``validate_datetime`` without the 400 for a datetime outside the
    collection's temporal extent.

    Why: such a datetime is valid and matches nothing (the syntax is checked against the
    OpenAPI pattern by :mod:`sdi.api.contract`).
    """
    from pygeoapi.api import validate_datetime as pygeoapi_validate_datetime

    return pygeoapi_validate_datetime({}, datetime_)


@lru_cache(maxsize=32)
def _bbox_transformer(from_uri: str, to_uri: str, always_xy: bool) -> tuple[Any, bool]:
    import pyproj
    from pygeoapi.crs import get_crs

    source, target = get_crs(from_uri), get_crs(to_uri)
    # pyproj ≥ 3.1: Transformer objects are thread-safe (pygeoapi calls from a thread pool).
    transformer = pyproj.Transformer.from_crs(source, target, always_xy=always_xy)
    return transformer, to_uri.rstrip("/").endswith("/3857")


def transform_bbox(
    bbox: list[float], from_crs: Any, to_crs: Any, always_xy: bool = False
) -> list[float]:
    """pygeoapi 0.24.0's ``transform_bbox`` with the transformer built once per CRS pair.

    Why: pygeoapi builds a pyproj Transformer and calls ``to_epsg()`` on the target CRS for
    every request with a ``bbox``; on CRS84 (which has no EPSG code) ``to_epsg()`` searches
    the whole EPSG database, which costs more than the rest of the request
    (``docs/api-contract.md``, "Speed").
    The corners are put in order first (:func:`sdi.api.bbox.corners_in_order`).
    """
    if not (isinstance(from_crs, str) and isinstance(to_crs, str)):
        from pygeoapi import crs

        return crs.transform_bbox(bbox, from_crs, to_crs, always_xy)
    bbox = corners_in_order(bbox, from_crs)
    if from_crs == to_crs:
        return [float(v) for v in bbox]
    transformer, mercator = _bbox_transformer(from_crs, to_crs, bool(always_xy))
    bbox = list(bbox)
    if mercator:  # as pygeoapi: clip to Web Mercator's latitudes
        bbox = [bbox[0], max(-85.0511, bbox[1]), bbox[2], min(85.0511, bbox[3])]
    half = len(bbox) // 2
    return list(transformer.transform(*bbox[:half]) + transformer.transform(*bbox[half:]))


# pygeoapi 0.24.0 modules that write JSON responses with ``to_json`` (imported by name). The
# admin API and the templates' ``to_json`` filter keep pygeoapi's (HTML-escaping) one.
_JSON_WRITERS = (
    "pygeoapi.api",
    "pygeoapi.api.coverages",
    "pygeoapi.api.environmental_data_retrieval",
    "pygeoapi.api.maps",
    "pygeoapi.api.processes",
    "pygeoapi.api.stac",
    "pygeoapi.api.tiles",
)


def _patch_json_writers() -> None:
    """JSON responses carry text as stored.

    Why: pygeoapi 0.24.0's ``to_json`` replaces ``<`` and ``>`` with ``&lt;`` ``&gt;`` in
    every JSON document, so a description "depth > 1 m" reaches a JSON client altered. JSON
    served as ``application/json`` is no HTML; escaping belongs to the HTML templates (Jinja
    autoescape, and their own ``to_json`` filter, left as it is).
    """
    import importlib

    for name in _JSON_WRITERS:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "to_json"):
            setattr(module, "to_json", to_json)  # noqa: B010 (a module found by name)


def to_json(dict_: dict, pretty: bool = False) -> str:
    """pygeoapi 0.24.0's ``to_json`` without its HTML escaping (:func:`_patch_json_writers`),
    writing unparsed :class:`FeatureTexts` as they are.

    Why: the provider's page holds the features as the GeoJSON texts PostGIS wrote; parsing
    them only to write them again costs more than building them.
    """
    from pygeoapi.util import json_serial

    features = dict_.get("features") if isinstance(dict_, dict) else None
    raw = features.raw() if isinstance(features, FeatureTexts) else None
    if raw is None:
        return json.dumps(
            dict_, default=json_serial, indent=4 if pretty else None, separators=(",", ":")
        )
    return json.dumps(
        {**dict_, "features": []},
        default=json_serial,
        indent=4 if pretty else None,
        separators=(",", ":"),
    ).replace('"features":[]', '"features":' + raw, 1)


# -- the log of an error answer ----------------------------------------------------------------
_LOGGED_DESCRIPTION = 200  # characters of a client error's description logged


def _patch_exception_log() -> None:
    """A client's mistake is logged as one warning line, its description truncated.

    Why: pygeoapi 0.24.0's ``API.get_exception`` logs every error answer, a 400 for a
    mistyped parameter included, at ERROR with the traceback of whatever exception is being
    handled, and the description whole (it echoes the client's value): a client could fill
    the log. Server errors (5xx) keep pygeoapi's ERROR with traceback.
    """
    from pygeoapi import api as api_module

    original = api_module.API.get_exception
    if getattr(original, "sdi_one_line", False):
        return
    logger = api_module.LOGGER

    def get_exception(
        self: Any, status: int, headers: dict, format_: Any, code: str, description: str
    ) -> Any:
        unavailable = int(status) == 503  # the database away: known, one line per request
        if int(status) >= 500 and not unavailable:
            return original(self, status, headers, format_, code, description)
        if int(status) >= 400:  # not a 204 (an empty tile): an answer, not an error
            text = " ".join(str(description).split())
            if len(text) > _LOGGED_DESCRIPTION:
                text = text[:_LOGGED_DESCRIPTION] + "…"
            level = logging.ERROR if unavailable else logging.WARNING
            logger.log(level, "%s %s: %s", int(status), code, text)
        _quiet.active = True  # pygeoapi's own ERROR line of this call is dropped (_Quiet)
        try:
            return original(self, status, headers, format_, code, description)
        finally:
            _quiet.active = False

    get_exception.sdi_one_line = True  # type: ignore[attr-defined]
    api_module.API.get_exception = get_exception
    logger.addFilter(_Quiet())


_quiet = threading.local()


class _Quiet:
    """Drops the ERROR record pygeoapi writes inside a client error's ``get_exception``
    (in this thread only: other requests log as usual)."""

    def filter(self, record: Any) -> bool:
        return not (getattr(_quiet, "active", False) and record.levelno >= 40)


# -- CSV --------------------------------------------------------------------------------------
def _patch_csv() -> None:
    """Cells of pygeoapi 0.24.0's CSV output cannot be spreadsheet formulas.

    Why: its CSV formatter writes property values as they are, so a value such as
    ``=HYPERLINK(…)`` (a citizen's incident text, a department's delivery) runs in the
    spreadsheet of whoever opens the download (:func:`sdi.api.csv_safe.cell`).
    """
    from pygeoapi.formatter.csv_ import CSVFormatter

    from sdi.api.media import SafeCsvWriter

    add_feature = CSVFormatter._add_feature
    if getattr(add_feature, "sdi_safe", False):
        return

    def _add_feature(self: Any, writer: Any, feature: dict, is_point: bool) -> None:
        return add_feature(self, SafeCsvWriter(writer), feature, is_point)

    _add_feature.sdi_safe = True  # type: ignore[attr-defined]
    CSVFormatter._add_feature = _add_feature


# -- JSON-LD of items --------------------------------------------------------------------------
_JSONLD_TEMPLATES = ("collections/items/index.jsonld", "collections/items/item.jsonld")


def _patch_jsonld_templates() -> None:
    from pygeoapi import linked_data

    if not getattr(linked_data.render_j2_template, "sdi_jsonld", False):
        linked_data.render_j2_template = _jsonld_renderer(linked_data.render_j2_template)


def _jsonld_renderer(render: Any) -> Any:
    """pygeoapi's template renderer, except that the JSON-LD of items is serialised as JSON.

    Why: pygeoapi 0.24.0's ``index.jsonld`` template writes invalid JSON for an empty page (a
    trailing comma) and neither template escapes quotes in values; the document they are
    given (context + features) is the JSON-LD, so it is dumped as it is.
    """

    def render_j2_template(config: Any, templates: Any, template: str, data: Any, *a: Any):
        if template in _JSONLD_TEMPLATES:
            return json.dumps(data, ensure_ascii=False, default=str)
        return render(config, templates, template, data, *a)

    render_j2_template.sdi_jsonld = True  # type: ignore[attr-defined]
    return render_j2_template


# -- processes: the caller of a job function --------------------------------------------------
_JOB_FUNCTIONS = ("execute_process", "get_jobs", "get_job_result", "delete_job")


def _patch_job_functions() -> None:
    """Wrap pygeoapi 0.24.0's job-related API functions so the job manager knows the caller.

    Why: pygeoapi gives a job manager no request, so it cannot keep each client's jobs its
    own; the wrapper (:func:`sdi.api.processes.as_caller`) sets the caller for the duration
    of one API call (``sdi.api.processes``, module docstring).
    """
    from pygeoapi.api import processes as processes_api

    from sdi.api.processes import as_caller

    for name in _JOB_FUNCTIONS:
        function = getattr(processes_api, name)
        if not getattr(function, "sdi_caller", False):
            setattr(processes_api, name, as_caller(function))


# -- languages: the language given to a provider --------------------------------------------
def _patch_plugin_locale() -> None:
    from pygeoapi import l10n

    if not getattr(l10n.get_plugin_locale, "sdi_locale", False):
        l10n.get_plugin_locale = _plugin_locale(l10n.get_plugin_locale)


def _plugin_locale(original: Any) -> Any:
    """pygeoapi's ``get_plugin_locale``, given the requested languages as a list.

    Why: pygeoapi 0.24.0 passes the raw ``lang`` / Accept-Language text (``"en"``,
    ``"en-GB,en;q=0.8"``) to ``best_match``, which ignores anything but a list: a provider
    with ``languages`` (the catalogue, :mod:`sdi.api.records`) always got its first one.
    """

    def get_plugin_locale(config: dict, requested_locale: Any) -> Any:
        if isinstance(requested_locale, str):
            weighted = []
            for position, part in enumerate(requested_locale.split(",")):
                tag, _, quality = part.strip().partition(";q=")
                try:
                    weight = float(quality) if quality else 1.0
                except ValueError:
                    weight = 0.0
                if tag:
                    weighted.append((-weight, position, tag))
            requested_locale = [tag for _, _, tag in sorted(weighted)] or None
        return original(config, requested_locale)

    get_plugin_locale.sdi_locale = True  # type: ignore[attr-defined]
    return get_plugin_locale
