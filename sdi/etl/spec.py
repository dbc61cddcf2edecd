"""ETL job specifications: one YAML file per source in ``etl/jobs/``.

The YAML is checked against ``schemas/job-spec.schema.json`` (errors name file, line and
key) and turned into the typed :class:`JobSpec` the engine runs.
"""

from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sdi.db.tables import Column, FeatureTable
from sdi.declarative import load_checked
from sdi.errors import ConfigError, SourceError
from sdi.settings import Settings, get_settings

FieldType = Literal["text", "integer", "float", "date", "timestamptz", "text[]"]


@dataclass(frozen=True)
class FieldSpec:
    """How one target column is filled."""

    name: str
    source: str | None = None
    value: Any = None
    derive: Literal["area", "length"] | None = None
    type: FieldType = "text"
    format: str | None = None
    split: str | None = None
    codes: str | None = None
    value_map: dict[str, Any] = field(default_factory=dict)
    required: bool = False
    gazetteer: str | None = None  # reference list the values must be in (sdi/etl/gazetteer.py)
    on_unknown: Literal["reject", "warn"] = "reject"


@dataclass(frozen=True)
class SourceSpec:
    path: str
    layer: str | None = None
    encoding: str = "auto"
    srid: int | None = None
    srid_override: str | None = None  # why srid wins over the file's own CRS
    x: str | None = None
    y: str | None = None
    wkt: str | None = None
    delimiter: str = ","


@dataclass(frozen=True)
class JobSpec:
    name: str
    path: Path
    title: str
    kind: Literal["vector", "table", "raster"]
    source: SourceSpec
    table: str
    mode: Literal["history", "replace_slice", "append"]
    natural_key: str | None
    fields: tuple[FieldSpec, ...]
    max_reject_ratio: float
    bounds: tuple[float, float, float, float]
    department: str | None = None
    slice_column: str | None = None
    contributes_as: str | None = None
    unique_geometry: bool = False
    declared: FeatureTable | None = None  # target.geometry + target.columns: sdi table sync
    plausibility: dict | None = None  # observation feeds: sdi/etl/plausibility.py

    @property
    def spec_sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def source_files(self, settings: Settings | None = None) -> list[Path]:
        """The delivered files this run reads, sorted; fails clearly when there are none."""
        settings = settings or get_settings()
        pattern = Path(self.source.path)
        if not pattern.is_absolute():
            pattern = settings.source_dir / pattern
        files = sorted(Path(p) for p in glob.glob(str(pattern)))
        if not files:
            raise SourceError(
                f"job {self.name}: no file matches {pattern} "
                f"(set SDI_SOURCE_DIR or fix source.path in {self.path})"
            )
        return files


def _field(name: str, raw: str | dict[str, Any]) -> FieldSpec:
    if isinstance(raw, str):
        return FieldSpec(name=name, source=raw)
    return FieldSpec(
        name=name,
        source=raw.get("from"),
        value=raw.get("value"),
        derive=raw.get("derive"),
        type=raw.get("type", "text"),
        format=raw.get("format"),
        split=raw.get("split"),
        codes=raw.get("codes"),
        value_map=raw.get("map", {}),
        required=raw.get("required", False),
        gazetteer=raw.get("gazetteer"),
        on_unknown=raw.get("on_unknown", "reject"),
    )


# Target columns every feature table has that a job's fields may fill.
FILLABLE_BOOKKEEPING = ("commune_code", "admin_vintage")


def _declared(path: Path, data: dict[str, Any]) -> FeatureTable | None:
    """The table a job spec declares (``target.geometry`` + ``target.columns``), if any."""
    target = data["target"]
    if "columns" not in target:
        return None
    columns = []
    for name, raw in target["columns"].items():
        raw = {"type": raw} if isinstance(raw, str) else raw
        columns.append(Column(name, raw["type"], raw.get("not_null", False)))
    try:
        table = FeatureTable(
            target["table"],
            target["geometry"],
            tuple(columns),
            comment=f"{data['title']} (declared in etl/jobs/{path.name})",
            partition_by=target.get("partition_by"),
        )
    except ConfigError as exc:
        raise ConfigError(f"{path}: target: {exc}") from None
    known = {c.name for c in table.columns} | set(FILLABLE_BOOKKEEPING)
    if table.partition_by:  # a national delivery may say each row's province itself
        known.add("province_code")
    stray = [name for name in data.get("fields", {}) if name not in known]
    if stray:
        raise ConfigError(
            f"{path}: fields {', '.join(stray)} are not declared in target.columns "
            f"(declared: {', '.join(c.name for c in table.columns)}; also fillable: "
            f"{', '.join(FILLABLE_BOOKKEEPING)}); declare them or remove them"
        )
    return table


def load_job(path: Path, settings: Settings | None = None) -> JobSpec:
    """Read and check one job spec file."""
    settings = settings or get_settings()
    data = load_checked(path, "job-spec.schema.json")
    source = data["source"]
    geometry = source.get("geometry", {})
    kind = data.get("kind", "vector")
    if kind == "vector" and "srid" not in source:
        raise ConfigError(
            f"{path}: source.srid is required: take the CRS from the delivery's metadata "
            "(e.g. 5899 for VN-2000 / TM-3 107-45), never guess it"
        )
    validation = data.get("validation", {})
    target = data["target"]
    if target.get("mode") == "replace_slice" and "slice" not in target:
        raise ConfigError(
            f"{path}: target.mode replace_slice needs target.slice: the column whose values in "
            "the delivery say what it replaces (e.g. commune_code)"
        )
    return JobSpec(
        name=path.stem,
        path=path,
        title=data["title"],
        kind=kind,
        department=data.get("department"),
        source=SourceSpec(
            path=source["path"],
            layer=source.get("layer"),
            encoding=source.get("encoding", "auto"),
            srid=source.get("srid"),
            srid_override=source.get("srid_override"),
            x=geometry.get("x"),
            y=geometry.get("y"),
            wkt=geometry.get("wkt"),
            delimiter=source.get("delimiter", ","),
        ),
        table=target["table"],
        mode=target.get("mode", "history"),
        slice_column=target.get("slice"),
        contributes_as=target.get("contributes_as"),
        unique_geometry=validation.get("unique_geometry", False),
        declared=_declared(path, data),
        plausibility=validation.get("plausibility"),
        natural_key=data.get("natural_key"),
        fields=tuple(_field(name, raw) for name, raw in data.get("fields", {}).items()),
        max_reject_ratio=validation.get("max_reject_ratio", 0.01),
        bounds=tuple(validation.get("bounds", settings.province_extent)),
    )


def discover_jobs(settings: Settings | None = None) -> dict[str, Path]:
    """Job name → spec file, for every ``*.yml`` in the jobs directory."""
    settings = settings or get_settings()
    return {p.stem: p for p in sorted(settings.jobs_dir.glob("*.yml"))}


def resolve_jobs(names: list[str], settings: Settings | None = None) -> list[JobSpec]:
    settings = settings or get_settings()
    known = discover_jobs(settings)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"unknown job(s): {', '.join(unknown)}; known jobs: {', '.join(known) or 'none'} "
            f"(in {settings.jobs_dir})"
        )
    return [load_job(known[n], settings) for n in names]
