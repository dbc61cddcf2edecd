"""Normalise a batch: map source columns to target columns, cast, map codes, reproject.

Work is vectorised per column (pandas) and per geometry array (shapely 2 + pyproj); rows that
cannot be normalised are not dropped silently but flagged with a reason for the quarantine.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from sdi.errors import SourceError
from sdi.etl.codes import code_list
from sdi.etl.read import Batch
from sdi.etl.spec import FieldSpec, JobSpec


@dataclass
class Issues:
    """The first reason each row of a batch is rejected for (None = row is fine)."""

    size: int
    reasons: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.reasons = np.full(self.size, None, dtype=object)

    def flag(self, mask: np.ndarray | pd.Series, reason: str | pd.Series | np.ndarray) -> None:
        mask = np.asarray(mask, dtype=bool) & pd.isna(self.reasons)
        if not mask.any():
            return
        if isinstance(reason, str):
            self.reasons[mask] = reason
        else:
            self.reasons[mask] = np.asarray(reason, dtype=object)[mask]

    @property
    def ok(self) -> np.ndarray:
        return pd.isna(self.reasons)


def natural_keys(frame: pd.DataFrame, template: str) -> pd.Series:
    """Build natural keys from a column name or a '{A}-{B}' template, vectorised.

    >>> natural_keys(pd.DataFrame({"A": ["06685", None], "B": [12, 3]}), "{A}-{B}").tolist()
    ['06685-12', None]
    """
    parts = list(string.Formatter().parse(template))
    if len(parts) == 1 and parts[0][1] is None:
        parts = [("", template, "", None)]  # a bare column name
    missing_any = pd.Series(False, index=frame.index)
    key = pd.Series("", index=frame.index, dtype=object)
    for literal, column, _, _ in parts:
        key = key + literal
        if column is not None:
            values = frame[column]
            missing_any |= values.isna() | (values.astype(str).str.strip() == "")
            key = key + values.astype(str).str.strip()
    return pd.Series(np.where(missing_any, None, key), index=frame.index, dtype=object)


def _cast(values: pd.Series, spec: FieldSpec, issues: Issues) -> pd.Series:
    """Cast source values to the field's type; values that do not cast are flagged."""
    present = values.notna() & (values.astype(str).str.strip() != "")
    text = values.where(present).astype(object)
    text = text.map(lambda v: v.strip() if isinstance(v, str) else v)

    def bad(result: pd.Series, what: str) -> None:
        failed = present & result.isna()
        issues.flag(failed, f"{spec.source}: " + text.astype(str) + f" is not {what}")

    match spec.type:
        case "integer":
            number = pd.to_numeric(text, errors="coerce")
            fractional = number.notna() & (number % 1 != 0)
            issues.flag(
                fractional, f"{spec.source}: " + text.astype(str) + " is not a whole number"
            )
            bad(number, "a number")
            return number.astype("Int64")
        case "float":
            number = pd.to_numeric(
                text.map(lambda v: v.replace(",", ".") if isinstance(v, str) else v),
                errors="coerce",
            )
            bad(number, "a number")
            return number
        case "date":
            parsed = pd.to_datetime(text, format=spec.format, errors="coerce")
            bad(parsed, f"a date ({spec.format or 'YYYY-MM-DD'})")
            return parsed.dt.strftime("%Y-%m-%d").where(parsed.notna(), None)
        case "timestamptz":
            parsed = pd.to_datetime(
                text, format=spec.format or "ISO8601", utc=True, errors="coerce"
            )
            bad(parsed, "a timestamp with time zone (ISO 8601)")
            return parsed.dt.strftime("%Y-%m-%dT%H:%M:%S%z").where(parsed.notna(), None)
        case _:
            return text.map(lambda v: str(v) if v is not None and v == v else None)


def _apply_codes(values: pd.Series, spec: FieldSpec, issues: Issues) -> pd.Series:
    """Map a (possibly multi-valued) code field to current codes; unknown codes are flagged."""
    codes = code_list(spec.codes) if spec.codes else None
    separator = spec.split

    def convert(value: Any) -> tuple[Any, str | None]:
        if value is None or value != value:
            return None, None
        items = [v for v in str(value).split(separator)] if separator else [str(value)]
        mapped = []
        for item in items:
            current = codes.normalise(item) if codes else item.strip()
            if current is None:
                return None, f"{spec.source}: unknown {codes.name} code {item.strip()!r}"
            mapped.append(current)
        if spec.type == "text[]":
            return "{" + ",".join(f'"{m}"' for m in mapped) + "}", None
        return mapped[0], None

    converted = values.map(convert)
    reasons = converted.map(lambda pair: pair[1])
    issues.flag(reasons.notna(), reasons)
    return converted.map(lambda pair: pair[0])


def map_fields(batch: Batch, job: JobSpec, issues: Issues) -> pd.DataFrame:
    """Target columns (except geometry and derived ones) from the batch's source columns."""
    frame = batch.frame
    wanted = [f.source for f in job.fields if f.source]
    missing = sorted({c for c in wanted if c not in frame.columns})
    if missing:
        raise SourceError(
            f"{batch.path}: column(s) {', '.join(missing)} named in {job.path.name} are missing; "
            f"the file has: {', '.join(map(str, frame.columns))}"
        )
    out = pd.DataFrame(index=frame.index)
    if job.natural_key:
        out["natural_key"] = natural_keys(frame, job.natural_key)
        issues.flag(out["natural_key"].isna(), f"natural key {job.natural_key} is incomplete")
    for spec in job.fields:
        if spec.derive:
            continue
        if spec.source is None:
            out[spec.name] = spec.value
            continue
        values = frame[spec.source]
        if spec.value_map:
            values = values.map(
                lambda v, m=spec.value_map: m.get(v, v) if isinstance(v, str) else v
            )
        if spec.codes or spec.split:
            values = _apply_codes(values, spec, issues)
        elif spec.type != "text[]":
            values = _cast(values, spec, issues)
        if spec.required:
            issues.flag(values.isna(), f"{spec.source} is required but empty")
        out[spec.name] = values
    return out


class Reprojector:
    """Source CRS → storage CRS, plus the province's VN-2000 CRS for legal areas and lengths."""

    def __init__(self, source_srid: int, storage_srid: int, province_srid: int) -> None:
        self.source_srid = source_srid
        self.storage_srid = storage_srid
        self._to_storage = self._transformer(source_srid, storage_srid)
        self._to_province = self._transformer(source_srid, province_srid)

    @staticmethod
    def _transformer(source: int, target: int) -> Transformer | None:
        if source == target:
            return None
        return Transformer.from_crs(f"EPSG:{source}", f"EPSG:{target}", always_xy=True)

    @staticmethod
    def _apply(transformer: Transformer | None, geometry: np.ndarray) -> np.ndarray:
        if transformer is None:
            return geometry
        return shapely.transform(
            geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )

    def to_storage(self, geometry: np.ndarray) -> np.ndarray:
        return self._apply(self._to_storage, geometry)

    def to_province(self, geometry: np.ndarray) -> np.ndarray:
        return self._apply(self._to_province, geometry)
