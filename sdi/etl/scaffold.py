"""``sdi layer new NAME --from FILE``: a job spec, a layer file and a style for a file nobody
has seen, from what the file itself says.

The file is inspected, not loaded: its driver and layers, fields and their types, CRS (the
GeoPackage's, the ``.prj``'s, GeoJSON's WGS 84; otherwise a guess from the coordinates, said
to be one), the text encoding (``sdi.etl``'s detection, with its evidence), the geometry type
and a natural key (a field whose sampled values are all present and distinct). Only the
first :data:`SAMPLE_ROWS` rows are read and the feature count is the file's own metadata, so a
million-feature file costs what a small one does: about 1.2 s of CPU, mostly importing pandas,
pyogrio and jsonschema (so they are imported where they are used, not when `sdi` starts).

Three files are written, each checked against its JSON Schema before anything is written:
``etl/jobs/NAME.yml`` (commented, declaring its table: ``sdi table sync`` writes the
migration), ``layers/NAME.yml`` and ``layers/styles/NAME.qml``/``.sld`` (the plain style of the
geometry type in a colour of its own, also entered in ``layers/styles/styles.yml``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console

from sdi.db.tables import BOOKKEEPING_COLUMNS, GEOMETRY_TYPES, REPAIRED_COLUMN
from sdi.declarative import load_checked
from sdi.errors import ConfigError, SdiError, SourceError
from sdi.settings import Settings, get_settings

if TYPE_CHECKING:
    import pandas as pd

SAMPLE_ROWS = 10_000
DETECT_ROWS = 2_000  # rows the encoding is detected on (sdi.etl's detection)
console = Console(stderr=True, highlight=False, soft_wrap=True)
app = typer.Typer(help="Published layers: scaffold a new one from a delivered file.")

# Column names that usually hold an identifier, best first (Vietnamese deliveries: ma_…).
_KEY_HINTS = ("id", "code", "ma", "ma_", "objectid", "fid", "gid", "key", "so_hieu", "sohieu")
_X_NAMES = ("x", "lon", "lng", "long", "longitude", "kinh_do", "kinhdo", "easting", "toa_do_x")
_Y_NAMES = ("y", "lat", "latitude", "vi_do", "vido", "northing", "toa_do_y")
_WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape")
_KINDS = {
    "Point": "point",
    "MultiPoint": "point",
    "LineString": "line",
    "MultiLineString": "line",
    "Polygon": "polygon",
    "MultiPolygon": "polygon",
}
_TYPE_IDS = {
    0: "Point",
    1: "LineString",
    3: "Polygon",
    4: "MultiPoint",
    5: "MultiLineString",
    6: "MultiPolygon",
}
_DOMAIN_SCHEMAS = {"operations": "ops"}
_DOMAINS = ("admin", "land", "construction", "utility", "hazard", "planning", "operations")


@dataclass
class FieldInfo:
    source: str  # the file's field name
    column: str  # the target column
    type: str  # declared column type (sdi.db.tables.COLUMN_TYPES)
    present: int  # non-empty values among the sampled rows
    distinct: int
    examples: list[str] = field(default_factory=list)


@dataclass
class Inspection:
    path: Path
    driver: str
    layers: list[tuple[str, str | None]]
    layer: str | None
    features: int | None
    sampled: int
    fields: list[FieldInfo]
    geometry: str  # target geometry type
    srid: int | None
    srid_evidence: str
    encoding: str
    encoding_evidence: str
    natural_key: str | None
    natural_key_evidence: str
    x: str | None = None  # CSV coordinate columns
    y: str | None = None
    wkt: str | None = None
    bounds: tuple[float, float, float, float] | None = None  # in the source CRS


# -- inspecting ------------------------------------------------------------------------------


def column_name(name: str, taken: set[str]) -> str:
    """A target column name for a source field: ASCII snake case, never a bookkeeping name.

    >>> column_name("Tên đường", set()), column_name("ID", set()), column_name("2nd", set())
    ('ten_duong', 'source_id', 'f_2nd')
    """
    text = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_") or "field"
    if text[0].isdigit():
        text = "f_" + text
    text = text[:50]
    if text in BOOKKEEPING_COLUMNS:
        text = "source_" + text
    base, n = text, 2
    while text in taken:
        text, n = f"{base}_{n}", n + 1
    taken.add(text)
    return text


def _column_type(values: pd.Series, declared: str | None) -> str:
    dtype = str(values.dtype).lower()
    declared = (declared or "").lower()
    if "bool" in dtype or declared == "bool":
        return "text"  # the ETL's field types have no boolean: 'True'/'False', declare it
    if "int" in dtype or declared.startswith("int"):
        # GeoPackage integers are all 64-bit: the sampled values decide
        present = values.dropna()
        return "bigint" if len(present) and present.abs().max() > 2**31 - 1 else "integer"
    if "float" in dtype or "double" in dtype or declared.startswith("float"):
        return "float"
    if declared == "datetime64[d]" or "date32" in dtype:
        return "date"
    if "datetime" in dtype or "timestamp" in dtype or declared.startswith("datetime"):
        return "timestamptz"
    return "text"


def _csv_type(values: pd.Series) -> str:
    """CSV values are all text: integer or float when every sampled value reads as one (codes
    with a leading zero, like commune codes, stay text)."""
    text = values.astype(str).str.strip()
    if text.empty or text.str.match(r"^-?0\d").any():
        return "text"
    if text.str.fullmatch(r"-?\d{1,9}").all():
        return "integer"
    if text.str.fullmatch(r"-?\d+([.,]\d+)?").all():
        return "float"
    return "text"


def _srid_of(crs: str | None, path: Path) -> tuple[int | None, str]:
    """EPSG code of a CRS GDAL read from the file, with where it came from."""
    where = {
        ".shp": f"{path.with_suffix('.prj').name}",
        ".gpkg": "the GeoPackage's gpkg_spatial_ref_sys",
        ".geojson": "GeoJSON (RFC 7946: WGS 84 unless a crs member says otherwise)",
        ".json": "GeoJSON (RFC 7946: WGS 84 unless a crs member says otherwise)",
    }.get(path.suffix.lower(), "the file's CRS")
    if not crs:
        return None, "no CRS in the file" + (f" (no {where})" if where.endswith(".prj") else "")
    match = re.fullmatch(r"EPSG:(\d+)", crs)
    if match:
        return int(match.group(1)), f"{where} says {crs}"
    from pyproj import CRS

    try:
        parsed = CRS.from_user_input(crs)
    except Exception:
        return None, f"{where} holds a CRS pyproj cannot read"
    code = parsed.to_epsg(min_confidence=70)
    if code:
        return code, f"{where}: {parsed.name!r}, identified as EPSG:{code}"
    return None, f"{where}: {parsed.name!r}, not identified as an EPSG code"


def _guess_srid(
    bounds: tuple[float, float, float, float] | None, settings: Settings
) -> tuple[int | None, str]:
    """From the coordinates alone: lon/lat in the province, or VN-2000 metres. A guess."""
    if bounds is None:
        return None, "no coordinates to guess from"
    minx, miny, maxx, maxy = bounds
    west, south, east, north = settings.province_extent
    if west - 1 <= minx and maxx <= east + 1 and south - 1 <= miny and maxy <= north + 1:
        return 4326, (
            f"GUESSED from the coordinates ({minx:.3f}..{maxx:.3f}, {miny:.3f}..{maxy:.3f} are "
            "lon/lat in the province): confirm with the department"
        )
    if minx >= 100_000 and maxx <= 900_000 and miny >= 1_000_000 and maxy <= 3_000_000:
        return settings.province_srid, (
            f"GUESSED from the coordinates (easting {minx:.0f}..{maxx:.0f}, northing "
            f"{miny:.0f}..{maxy:.0f} m): VN-2000 metres, the province's TM-3 zone assumed; "
            "confirm the zone (central meridian) with the department"
        )
    return None, f"the coordinates ({minx}..{maxx}, {miny}..{maxy}) fit no CRS we know"


def _hinted(column: str) -> bool:
    """Named like an identifier (id, code, ma_…, so_hieu, …)."""
    return any(column == h or column.startswith(h) or column.endswith("_" + h) for h in _KEY_HINTS)


def _key_combination(
    fields: list[FieldInfo], frame: pd.DataFrame, sampled: int
) -> tuple[str | None, str]:
    """No single field identifies a row: the first 2 or 3 always-present fields (of the first
    eight such) whose combination is distinct in the sample, as a template."""
    from itertools import combinations

    usable = [
        f
        for f in fields
        if sampled and f.present == sampled and f.type in ("text", "integer", "bigint")
    ][:8]
    for size in (2, 3):
        for combo in combinations(usable, size):
            if not frame[[f.source for f in combo]].astype(str).duplicated().any():
                # The sample is the file's first rows, often one commune or sheet: a code
                # field (ma…, …_id) that is constant there may still tell the rest apart.
                codes = [f for f in usable if _hinted(f.column) and f not in combo]
                chosen = [f for f in usable if f in combo or f in codes]
                template = "-".join("{" + f.source + "}" for f in chosen)
                return template, (
                    f"no single field is distinct in the {sampled:,} sampled rows; "
                    f"{' + '.join(f.source for f in combo)} together are"
                    + (
                        f" ({', '.join(f.source for f in codes)} added: a code that may tell "
                        "the rest of the file apart)"
                        if codes
                        else ""
                    )
                )
    return None, (
        f"no field, nor 2 or 3 together, is present and distinct in all {sampled:,} sampled "
        "rows: write a template of the fields that identify a feature, e.g. '{A}-{B}'"
    )


def _natural_key(
    fields: list[FieldInfo], frame: pd.DataFrame, sampled: int
) -> tuple[str | None, str]:
    candidates = [f for f in fields if sampled and f.present == sampled and f.distinct == sampled]
    candidates = [f for f in candidates if f.type in ("text", "integer", "bigint")]
    if not candidates:
        return _key_combination(fields, frame, sampled)

    def rank(f: FieldInfo) -> tuple[int, int]:
        return (0 if _hinted(f.column) else 1, fields.index(f))

    best = min(candidates, key=rank)
    others = [f.source for f in candidates if f is not best]
    return best.source, (
        f"{best.source} is present and distinct in all {sampled:,} sampled rows"
        + (f" (so are: {', '.join(others[:5])})" if others else "")
    )


def _csv_columns(names: list[str]) -> tuple[str | None, str | None, str | None]:
    lower = {n.lower(): n for n in names}
    wkt = next((lower[n] for n in _WKT_NAMES if n in lower), None)
    x = next((lower[n] for n in _X_NAMES if n in lower), None)
    y = next((lower[n] for n in _Y_NAMES if n in lower), None)
    return (None, None, wkt) if wkt and not (x and y) else (x, y, None)


def inspect_file(
    path: Path,
    layer: str | None = None,
    *,
    sample: int = SAMPLE_ROWS,
    settings: Settings | None = None,
) -> Inspection:
    """What a delivered file holds, from its metadata and its first ``sample`` rows."""
    # imported here, not at the top: `sdi` imports this module for every command
    import numpy as np
    import pandas as pd
    import pyogrio
    import shapely

    from sdi.etl.readers import read_batches
    from sdi.etl.spec import SourceSpec

    settings = settings or get_settings()
    if not path.is_file():
        raise SourceError(f"{path}: file not found")
    try:
        layers = [(str(n), g) for n, g in pyogrio.list_layers(path)]
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError(f"{path}: GDAL cannot open it as a vector dataset ({message})") from None
    names = [n for n, _ in layers]
    if layer is not None and layer not in names:
        raise SourceError(f"{path}: no layer {layer!r}; the file has: {', '.join(names)}")
    if layer is None and len(layers) > 1:
        spatial = [n for n, g in layers if g not in (None, "None")]
        if len(spatial) != 1:
            raise SourceError(
                f"{path}: the file has {len(layers)} layers ({', '.join(names)}); "
                "choose one with --layer"
            )
        layer = spatial[0]
    try:
        info = pyogrio.read_info(path, layer=layer if layer is not None else 0)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError(f"{path}: GDAL cannot read layer {layer!r} ({message})") from None
    driver = info["driver"]
    declared_types = dict(zip(info["fields"], map(str, info["dtypes"]), strict=False))
    x = y = wkt = None
    if driver == "CSV":
        x, y, wkt = _csv_columns(list(info["fields"]))
        if not (x and y) and not wkt:
            raise SourceError(
                f"{path}: a CSV needs coordinate columns (x/y, lon/lat, kinh_do/vi_do) or a WKT "
                f"column; it has: {', '.join(info['fields'])}"
            )
    source = SourceSpec(path=str(path), layer=layer, encoding="auto", srid=None, x=x, y=y, wkt=wkt)
    # Small batches: the encoding is decided on the first one (its evidence counts values
    # up to 5,000, a second at most), the field statistics use them all.
    frames, shapes, batch = [], [], None
    for batch in read_batches(path, source, batch_size=min(sample, DETECT_ROWS), settings=settings):
        frames.append(batch.frame)
        shapes.append(batch.geometry)
        if sum(map(len, frames)) >= sample:
            break
    if batch is None or not sum(map(len, frames)):
        raise SourceError(f"{path}: the layer has no features")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    sampled = len(frame)
    geometry = None if shapes[0] is None else np.concatenate([s for s in shapes if s is not None])
    bounds: tuple[float, float, float, float] | None = None
    geometry_type = info.get("geometry_type") or "Unknown"
    if geometry is not None and len(geometry):
        present = geometry[~shapely.is_missing(geometry)]
        if len(present):
            minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(present))
            bounds = (minx, miny, maxx, maxy)
            if geometry_type.replace(" ", "") in ("Unknown", "None", "Geometry") or driver == "CSV":
                # the layer does not say (GeoJSON, CSV): the sampled geometries do
                kinds = {
                    _TYPE_IDS.get(k, "Geometry") for k in shapely.get_type_id(present).tolist()
                }
                families = {_KINDS.get(k) for k in kinds}
                if len(kinds) == 1:
                    geometry_type = kinds.pop()
                elif len(families) == 1 and None not in families:  # Polygon + MultiPolygon
                    geometry_type = next(k for k in kinds if k.startswith("Multi"))
                else:
                    geometry_type = " + ".join(sorted(kinds))
    if driver == "CSV" and bounds is not None and x and y:
        minx, miny, maxx, maxy = bounds
        if minx >= 1_000_000 and maxx <= 3_000_000 and miny >= 100_000 and maxy <= 900_000:
            # VN-2000 surveyors write X = northing, Y = easting: swap, and say so in the spec
            x, y = y, x
            bounds = (miny, minx, maxy, maxx)
    geometry_type = geometry_type.removesuffix(" Z").removesuffix("Z").removesuffix(" M")
    # polygons and lines are stored as multi (a delivery mixes both), as the built-in tables
    target_geometry = {"Polygon": "MultiPolygon", "LineString": "MultiLineString"}.get(
        geometry_type, geometry_type
    )
    if target_geometry not in GEOMETRY_TYPES:
        raise SourceError(
            f"{path}: geometry type {geometry_type!r} (mixed or unknown): a table holds one "
            "geometry type; split the delivery by type or convert it first"
        )
    taken: set[str] = set()
    fields = []
    skip = {c for c in (x, y, wkt) if c}
    for name in frame.columns:
        if name in skip:
            continue
        values = frame[name]
        present_values = values.dropna()
        if present_values.dtype == object:
            present_values = present_values[present_values.astype(str).str.strip() != ""]
        examples = [str(v)[:24] for v in present_values.drop_duplicates().head(3)]
        fields.append(
            FieldInfo(
                source=str(name),
                column=column_name(str(name), taken),
                type=_csv_type(present_values)
                if driver == "CSV"
                else _column_type(values, declared_types.get(name)),
                present=len(present_values),
                distinct=int(present_values.astype(str).nunique()),
                examples=examples,
            )
        )
    srid, srid_evidence = _srid_of(info.get("crs"), path)
    if srid is None and driver in ("GeoJSON", "GeoJSONSeq") and not info.get("crs"):
        srid, srid_evidence = 4326, "GeoJSON without a crs member: RFC 7946 WGS 84"
    if srid is None:
        srid, guess = _guess_srid(bounds, settings)
        srid_evidence = f"{srid_evidence}; {guess}"
    key, key_evidence = _natural_key(fields, frame, sampled)
    encoding = batch.encoding or "utf-8"
    evidence = batch.encoding_evidence or "all sampled text is ASCII: any encoding reads it"
    return Inspection(
        path=path,
        driver=driver,
        layers=layers,
        layer=layer if len(layers) > 1 else None,
        features=info.get("features") if (info.get("features") or -1) >= 0 else None,
        sampled=sampled,
        fields=fields,
        geometry=target_geometry,
        srid=srid,
        srid_evidence=srid_evidence,
        encoding=encoding,
        encoding_evidence=evidence,
        natural_key=key,
        natural_key_evidence=key_evidence,
        x=x,
        y=y,
        wkt=wkt,
        bounds=bounds,
    )


# -- writing ---------------------------------------------------------------------------------


def _yaml_scalar(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1000)
        .strip()
        .removesuffix("...")
        .strip()
    )


def _printable(text: str) -> str:
    """YAML comments take printable characters only: evidence quotes raw bytes (\\x90)."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02X}" for c in text)


def _comment(text: str, indent: str = "") -> str:
    return "".join(f"{indent}# {_printable(line)}\n" for line in text.splitlines())


def source_path(path: Path, settings: Settings) -> str:
    """``source.path`` for the job spec: relative to SDI_SOURCE_DIR when the file is there."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(settings.source_dir.resolve()))
    except ValueError:
        return str(resolved)


def render_job(
    name: str, found: Inspection, table: str, department: str | None, settings: Settings
) -> str:
    """The commented job spec (YAML text)."""
    title = name.replace("_", " ").capitalize()
    lines = [
        f"# Job spec written by `sdi layer new {name} --from {found.path.name}`: edit it, then",
        "#   sdi table sync --apply     # the table's migration (schemas/migrations/versions/)",
        f"#   sdi etl run {name}",
        "#   sdi publish && sdi serve restart",
        "# Every option: docs/reference.md.",
        f"# Inspected: {found.driver}"
        + (f", layer {found.layer}" if found.layer else "")
        + (f", {found.features:,} features" if found.features is not None else "")
        + f"; {found.sampled:,} rows sampled.",
        f"title: {_yaml_scalar(title)}",
    ]
    if department:
        lines.append(f"department: {_yaml_scalar(department)}")
    lines += ["source:", f"  path: {_yaml_scalar(source_path(found.path, settings))}"]
    if found.layer:
        lines.append(f"  layer: {_yaml_scalar(found.layer)}")
    lines.append(_comment(found.encoding_evidence, "  ").rstrip("\n"))
    lines.append(f"  encoding: auto                # detected: {found.encoding}; name it to insist")
    lines.append(_comment(found.srid_evidence, "  ").rstrip("\n"))
    if found.srid is None:
        raise SourceError(
            f"{found.path}: the CRS cannot be told from the file ({found.srid_evidence}); "
            "ask the department for it and pass --srid"
        )
    lines.append(f"  srid: {found.srid}")
    if found.x and found.y:
        lines.append(
            f"  geometry: {{x: {_yaml_scalar(found.x)}, y: {_yaml_scalar(found.y)}}}"
            "   # x = easting/longitude (VN-2000 surveyors write X = northing): check"
        )
    elif found.wkt:
        lines.append(f"  geometry: {{wkt: {_yaml_scalar(found.wkt)}}}")
    lines += [
        "target:",
        f"  table: {table}",
        "  # The table is declared here: `sdi table sync` turns it into a migration. Add a",
        "  # column (or widen integer → bigint/float, anything → text) and sync again.",
        f"  geometry: {found.geometry}",
        "  columns:",
    ]
    for f in found.fields:
        lines.append(f"    {f.column}: {_yaml_scalar(f.type)}")
    lines.append(_comment(found.natural_key_evidence).rstrip("\n"))
    key = found.natural_key or "{" + "}-{".join(f.source for f in found.fields[:2]) + "}"
    if found.natural_key is None and not found.fields:
        raise SourceError(f"{found.path}: no attribute fields to make a natural key of")
    lines.append(f"natural_key: {_yaml_scalar(key)}")
    lines.append("fields:                           # target column: source field")
    for f in found.fields:
        example = f"   # e.g. {', '.join(f.examples)}" if f.examples else ""
        example = _printable(example.replace("\n", " "))[:100]
        if f.type == "text":
            lines.append(f"  {f.column}: {_yaml_scalar(f.source)}{example}")
        else:
            mapping = {"from": f.source, "type": "float" if f.type == "float" else f.type}
            if f.type in ("bigint",):
                mapping["type"] = "integer"
            if f.type == "boolean":
                mapping = {"from": f.source}  # taken as it is
            lines.append(f"  {f.column}: {_yaml_scalar(mapping)}{example}")
    lines += ["validation:", "  max_reject_ratio: 0.01         # more rejects: nothing written"]
    return "\n".join(lines) + "\n"


def render_layer(
    name: str, found: Inspection, table: str, domain: str | None, department: str | None
) -> str:
    title = name.replace("_", " ").capitalize()
    data: dict[str, Any] = {
        "title": title,
        "description": f"{title}, loaded from {found.path.name} by the ETL job {name}.",
        "keywords": [name.replace("_", " ")],
    }
    if domain:
        data["domain"] = domain
    data["style"] = name
    data["source"] = {"table": f"{table}_current"}
    data["properties"] = ["commune_code", *(f.column for f in found.fields), REPAIRED_COLUMN]
    data["metadata"] = {"etl_jobs": [name]}
    if department:
        data["metadata"]["department"] = department
    header = (
        f"# Layer written by `sdi layer new {name}`: what is published and how. Every option:\n"
        "# docs/reference.md. Mark personal data with `personal: [column, …]` before publishing.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


# The colours of scripts/make_styles.py's default_<kind> styles (styles.yml: defaults), replaced
_DEFAULT_COLOURS = {
    "point": "106,61,154,255",
    "line": "106,61,154,255",
    "polygon": "202,178,214,255",
}
_DEFAULT_HEX = {"point": "#6a3d9a", "line": "#6a3d9a", "polygon": "#cab2d6"}


def style_colour(name: str) -> str:
    """A colour of the layer's own, stable for its name (hue from a hash)."""
    import colorsys

    hue = int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) / 0xFFFF
    r, g, b = colorsys.hls_to_rgb(hue, 0.5, 0.65)
    return "#{:02x}{:02x}{:02x}".format(*(round(v * 255) for v in (r, g, b)))


def write_style(name: str, kind: str, styles: Path) -> list[Path]:
    """``<name>.qml``/``.sld``: the plain style of ``kind`` (what scripts/make_styles.py writes for
    ``single:``) in the layer's colour, and its entry in styles.yml so regenerating keeps it."""
    colour = style_colour(name)
    rgb = ",".join(str(int(colour[i : i + 2], 16)) for i in (1, 3, 5)) + ",255"
    written = []
    for suffix, old, new in (
        (".qml", _DEFAULT_COLOURS[kind], rgb),
        (".sld", _DEFAULT_HEX[kind], colour),
    ):
        text = (styles / f"default_{kind}{suffix}").read_text(encoding="utf-8")
        path = styles / f"{name}{suffix}"
        path.write_text(text.replace(old, new), encoding="utf-8")
        written.append(path)
    palette = styles / "styles.yml"
    if palette.is_file():
        text = palette.read_text(encoding="utf-8")
        if not re.search(rf"(?m)^  {re.escape(name)}:", text):
            entry = f'  {name}:   # sdi layer new\n    geometry: {kind}\n    single: "{colour}"\n'
            palette.write_text(text.rstrip("\n") + "\n" + entry, encoding="utf-8")
            written.append(palette)
    return written


@dataclass
class Scaffolded:
    inspection: Inspection
    job: Path
    layer: Path
    style: list[Path]
    table: str


def scaffold(
    name: str,
    path: Path,
    *,
    department: str | None = None,
    domain: str | None = None,
    table: str | None = None,
    layer: str | None = None,
    srid: int | None = None,
    force: bool = False,
    settings: Settings | None = None,
) -> Scaffolded:
    """Inspect ``path`` and write the job spec, the layer file and the style of ``name``."""
    from sdi.db.tables import check_identifier, split_qualified

    settings = settings or get_settings()
    check_identifier(name, "layer name")
    if domain is not None and domain not in _DOMAINS:
        raise ConfigError(f"--domain {domain!r}: one of {', '.join(_DOMAINS)}")
    table = table or f"{_DOMAIN_SCHEMAS.get(domain or '', domain or 'sources')}.{name}"
    split_qualified(table)
    job_path = settings.jobs_dir / f"{name}.yml"
    layer_path = settings.layers_dir / f"{name}.yml"
    styles = settings.layers_dir / "styles"
    existing = [p for p in (job_path, layer_path, styles / f"{name}.qml") if p.exists()]
    if existing and not force:
        raise ConfigError(
            f"{', '.join(map(str, existing))} exists already: choose another name or --force"
        )
    found = inspect_file(path, layer, settings=settings)
    if srid is not None:
        found.srid, found.srid_evidence = srid, f"given with --srid (file: {found.srid_evidence})"
    job_text = render_job(name, found, table, department, settings)
    layer_text = render_layer(name, found, table, domain, department)
    # Both must be valid before either is written.
    import tempfile

    from sdi.etl.spec import load_job

    with tempfile.TemporaryDirectory(prefix="sdi-scaffold-") as tmp:
        (Path(tmp) / job_path.name).write_text(job_text, encoding="utf-8")
        load_job(Path(tmp) / job_path.name, settings)
        (Path(tmp) / "layer.yml").write_text(layer_text, encoding="utf-8")
        load_checked(Path(tmp) / "layer.yml", "layer.schema.json")
    settings.jobs_dir.mkdir(parents=True, exist_ok=True)
    styles.mkdir(parents=True, exist_ok=True)
    job_path.write_text(job_text, encoding="utf-8")
    style_paths = write_style(name, _KINDS[found.geometry], styles)
    layer_path.write_text(layer_text, encoding="utf-8")
    return Scaffolded(found, job_path, layer_path, style_paths, table)


@app.command("new")
def new_command(
    name: Annotated[str, typer.Argument(help="Layer and job name (lower case, digits, _)")],
    source: Annotated[Path, typer.Option("--from", help="The delivered file to inspect")],
    department: Annotated[str | None, typer.Option(help="Who delivers it")] = None,
    domain: Annotated[
        str | None, typer.Option(help="admin, land, construction, utility, hazard, …")
    ] = None,
    table: Annotated[
        str | None, typer.Option(help="Target table (default <domain schema or sources>.NAME)")
    ] = None,
    layer: Annotated[str | None, typer.Option(help="The file's layer, when it has several")] = None,
    srid: Annotated[int | None, typer.Option(help="EPSG code, when the file does not say")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite existing files of NAME")] = False,
) -> None:
    """Inspect a delivered file and write etl/jobs/NAME.yml, layers/NAME.yml and its style."""
    settings = get_settings()
    try:
        done = scaffold(
            name,
            source,
            department=department,
            domain=domain,
            table=table,
            layer=layer,
            srid=srid,
            force=force,
            settings=settings,
        )
    except SdiError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    f = done.inspection
    console.print(
        f"{f.path.name}: {f.driver}, {f.geometry}"
        + (f", {f.features:,} features" if f.features is not None else "")
        + f", {len(f.fields)} fields, EPSG:{f.srid}, text {f.encoding}, "
        + f"natural key {f.natural_key or '(none: a template, check it)'}"
    )
    console.print(f"  CRS: {f.srid_evidence}")
    console.print(f"  encoding: {f.encoding_evidence}")
    console.print(f"  key: {f.natural_key_evidence}")
    for path in (done.job, done.layer, *done.style):
        console.print(f"wrote {path}")
    console.print(
        f"next: edit them, then `sdi table sync --apply`, `sdi etl run {name}`, `sdi publish`, "
        "`sdi serve restart`"
    )
