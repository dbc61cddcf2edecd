"""Normalise a batch: map source columns to target columns, cast, map codes, reproject.

Work is vectorised per column (pandas) and per geometry array (shapely 2 + pyproj); rows that
cannot be normalised are not dropped silently but flagged with a reason for the quarantine.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pyproj import Transformer

from sdi.errors import SourceError
from sdi.etl.codes import code_list
from sdi.etl.readers.common import Batch
from sdi.etl.spec import FieldSpec, JobSpec


@dataclass
class Issues:
    """The first reason each row of a batch is rejected for (None = row is fine)."""

    size: int
    reasons: np.ndarray = field(init=False)
    # (position in the batch, message): values kept but reported (``on_unknown: warn``)
    warnings: list[tuple[int, str]] = field(default_factory=list)

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

    def subset(self, keep: np.ndarray) -> Issues:
        """The issues of the kept rows only."""
        kept = Issues(int(keep.sum()))
        kept.reasons = self.reasons[keep]
        new_position = np.cumsum(keep) - 1
        kept.warnings = [(int(new_position[p]), m) for p, m in self.warnings if keep[p]]
        return kept


_ARROW_TEXT = pd.ArrowDtype(pa.string())


def _text(values: pd.Series) -> pa.Array:
    """Values as trimmed Arrow strings, empty ones as nulls (vectorised in Arrow's C++).

    Text read from Arrow sources stays in Arrow: no Python string is made per value."""
    if isinstance(values.dtype, pd.ArrowDtype | pd.StringDtype):
        array = pa.array(values)  # the Arrow data behind the column, not a copy
    else:
        array = pa.array(values.to_numpy(dtype=object, na_value=None), from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_string(array.type):
        array = pc.cast(array, pa.string())
    trimmed = pc.utf8_trim_whitespace(array)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _to_series(array: pa.Array, index: pd.Index) -> pd.Series:
    """Arrow strings as a pandas column that keeps them in Arrow (missing values are NA)."""
    return pd.Series(pd.arrays.ArrowExtensionArray(array), index=index, dtype=_ARROW_TEXT)


POSITION = "#"  # ``{#}`` in a natural key: the feature's position (row number) in its file


def natural_keys(
    frame: pd.DataFrame, template: str, first_row: int = 1, where: object = None
) -> pd.Series:
    """Build natural keys from a column name or a '{A}-{B}' template, vectorised; ``{#}`` is
    the row's position in its file (``first_row`` is the batch's first), for files with no id.

    >>> natural_keys(pd.DataFrame({"A": ["06685", None], "B": [12, 3]}), "{A}-{B}").tolist()
    ['06685-12', <NA>]
    >>> natural_keys(pd.DataFrame({"A": ["x", "y"]}), "p-{#}", first_row=7).tolist()
    ['p-7', 'p-8']
    """
    parts = list(string.Formatter().parse(template))
    if len(parts) == 1 and parts[0][1] is None:
        parts = [("", template, "", None)]  # a bare column name
    pieces: list[pa.Array | str] = []
    for literal, column, _, _ in parts:
        if literal:
            pieces.append(literal)
        if column == POSITION:
            positions = np.arange(first_row, first_row + len(frame))
            pieces.append(pc.cast(pa.array(positions), pa.string()))
        elif column is not None:
            if column not in frame.columns:
                raise SourceError(
                    f"{where or 'the delivery'}: natural_key {template!r} names column "
                    f"{column!r}, which the file does not have; it has: "
                    f"{', '.join(map(str, frame.columns))}"
                )
            pieces.append(_text(frame[column]))
    key = pc.binary_join_element_wise(*pieces, "")  # any null part makes the key null
    return _to_series(key, frame.index)


def _flag_unparsed(
    present: pd.Series,
    result: pd.Series,
    text: pd.Series,
    spec: FieldSpec,
    what: str,
    issues: Issues,
) -> None:
    failed = (present & result.isna()).to_numpy()
    if failed.any():  # build messages only for the rows that failed
        reasons = np.full(len(text), None, dtype=object)
        reasons[failed] = [f"{spec.source}: {v!r} is not {what}" for v in text[failed]]
        issues.flag(failed, reasons)


def _cast(values: pd.Series, spec: FieldSpec, issues: Issues) -> pd.Series:
    """Cast source values to the field's type; values that do not cast are flagged."""
    if spec.type in ("integer", "float") and pd.api.types.is_numeric_dtype(values.dtype):
        number = values.astype("float64")  # already numbers (GeoPackage, Shapefile N fields)
        text = values.astype(object)
    else:
        text = _to_series(_text(values), values.index)
        number = None
        if spec.type != "text":  # parsed by pandas: plain Python strings
            text = pd.Series(text.to_numpy(dtype=object, na_value=None), index=values.index)
    present = text.notna()

    match spec.type:
        case "integer":
            if number is None:
                number = pd.to_numeric(text, errors="coerce")
                _flag_unparsed(present, number, text, spec, "a number", issues)
            fractional = (number.notna() & (number % 1 != 0)).to_numpy()
            if fractional.any():
                _flag_unparsed(
                    pd.Series(fractional, index=values.index),
                    number.where(~fractional),
                    text,
                    spec,
                    "a whole number",
                    issues,
                )
            return number.round().astype("Int64")
        case "float":
            if number is None:
                number = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
                _flag_unparsed(present, number, text, spec, "a number", issues)
            return number
        case "date":
            parsed = pd.to_datetime(text, format=spec.format, errors="coerce")
            _flag_unparsed(
                present, parsed, text, spec, f"a date ({spec.format or 'YYYY-MM-DD'})", issues
            )
            return parsed.dt.strftime("%Y-%m-%d").where(parsed.notna(), None)
        case "timestamptz":
            parsed = pd.to_datetime(
                text, format=spec.format or "ISO8601", utc=True, errors="coerce"
            )
            _flag_unparsed(
                present, parsed, text, spec, "a timestamp with time zone (ISO 8601)", issues
            )
            return parsed.dt.strftime("%Y-%m-%dT%H:%M:%S%z").where(parsed.notna(), None)
        case _:
            return text


def _apply_codes(values: pd.Series, spec: FieldSpec, issues: Issues) -> pd.Series:
    """Map a (possibly multi-valued) code field to current codes; unknown codes are flagged.

    Code fields have few distinct values: each is converted once (Arrow's dictionary
    encoding finds them), and the results are taken for every row in Arrow — a text or, for
    ``text[]``, a list of texts, as the COPY writes them.
    """
    codes = code_list(spec.codes) if spec.codes else None
    separator = spec.split
    as_list = spec.type == "text[]"

    def convert(value: str) -> tuple[Any, str | None]:
        items = value.split(separator) if separator else [value]
        mapped = []
        for item in items:
            current = codes.normalise(item) if codes else item.strip()
            if current is None:
                return None, f"{spec.source}: unknown {spec.codes} code {item.strip()!r}"
            mapped.append(current)
        return (mapped if as_list else mapped[0]), None

    encoded = pc.dictionary_encode(_text(values))
    converted = [convert(value) for value in encoded.dictionary.to_pylist()]
    result_type = pa.list_(pa.string()) if as_list else pa.string()
    results = pa.array([c[0] for c in converted], result_type)
    failures = pa.array([c[1] for c in converted], pa.string())
    if failures.null_count < len(failures):
        reasons = failures.take(encoded.indices)
        issues.flag(reasons.is_valid().to_numpy(zero_copy_only=False), reasons.to_numpy(False))
    mapped = results.take(encoded.indices)
    return pd.Series(pd.arrays.ArrowExtensionArray(mapped), index=values.index)


def _check_gazetteer(values: pd.Series, spec: FieldSpec, issues: Issues) -> None:
    """Values that are not in the field's reference list: rejected, or kept with a warning.
    Each distinct value is looked up once."""
    from sdi.etl.gazetteer import gazetteer

    reference = gazetteer(spec.gazetteer)
    encoded = pc.dictionary_encode(_text(values.astype(str).where(values.notna(), None)))
    verdicts = [
        None
        if value is None or value in reference
        else f"{spec.source}: " + reference.explain(value)
        for value in encoded.dictionary.to_pylist()
    ]
    if all(v is None for v in verdicts):
        return
    reasons = pa.array(verdicts, pa.string()).take(encoded.indices)
    bad = reasons.is_valid().to_numpy(zero_copy_only=False) & issues.ok
    messages = reasons.to_numpy(zero_copy_only=False)
    if spec.on_unknown == "warn":
        issues.warnings.extend((int(p), messages[p]) for p in np.flatnonzero(bad))
    else:
        issues.flag(bad, messages)


def map_fields(batch: Batch, job: JobSpec, issues: Issues) -> pd.DataFrame:
    """Target columns (except the natural key, geometry and derived ones) from the batch."""
    frame = batch.frame
    wanted = [f.source for f in job.fields if f.source]
    missing = sorted({c for c in wanted if c not in frame.columns})
    if missing:
        raise SourceError(
            f"{batch.path}: column(s) {', '.join(missing)} named in {job.path.name} are missing; "
            f"the file has: {', '.join(map(str, frame.columns))}"
        )
    out = pd.DataFrame(index=frame.index)
    for spec in job.fields:
        if spec.derive:
            continue
        if spec.source is None:
            out[spec.name] = spec.value
            continue
        values = frame[spec.source]
        if spec.value_map:
            # values not in the map stay as they are
            values = values.replace({k: v for k, v in spec.value_map.items()})
        if spec.codes or spec.split or spec.type == "text[]":
            values = _apply_codes(values, spec, issues)
        else:
            values = _cast(values, spec, issues)
        if spec.required:
            issues.flag(values.isna(), f"{spec.source} is required but empty")
        if spec.gazetteer:
            _check_gazetteer(values, spec, issues)
        out[spec.name] = values
    return out


class Reprojector:
    """Source CRS → storage CRS, plus the province's VN-2000 CRS for legal areas and lengths.

    Large batches are reprojected in two halves on two threads: PROJ releases the GIL, so
    the second half uses the core the database leaves idle while Python normalises (2 M
    coordinates 5899 → 4326: 1.6 s → 1.0 s with a core free; no gain when both are busy).
    Each thread has its own transformer (PROJ contexts are not shared between threads); the
    results are the same to the bit."""

    SPLIT = 20_000  # coordinates: below this one thread is faster than handing over

    def __init__(self, source_srid: int, storage_srid: int, province_srid: int) -> None:
        self.source_srid = source_srid
        self.storage_srid = storage_srid
        self._to_storage = self._transformers(source_srid, storage_srid)
        self._to_province = self._transformers(source_srid, province_srid)

    @staticmethod
    def _transformers(source: int, target: int) -> tuple[Transformer, Transformer] | None:
        if source == target:
            return None
        return tuple(  # type: ignore[return-value]
            Transformer.from_crs(f"EPSG:{source}", f"EPSG:{target}", always_xy=True)
            for _ in range(2)
        )

    @classmethod
    def _project(
        cls, transformers: tuple[Transformer, Transformer], x: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        here, there = transformers
        if len(x) < cls.SPLIT:
            return here.transform(x, y)
        half = len(x) // 2
        other = _pool().submit(there.transform, x[half:], y[half:])
        x1, y1 = here.transform(x[:half], y[:half])
        x2, y2 = other.result()
        return np.concatenate([x1, x2]), np.concatenate([y1, y2])

    @classmethod
    def _apply(
        cls, transformers: tuple[Transformer, Transformer] | None, geometry: np.ndarray
    ) -> np.ndarray:
        if transformers is None:
            return geometry
        return shapely.transform(
            geometry, functools.partial(cls._project, transformers), interleaved=False
        )

    @property
    def storage_xy(self) -> Callable[[np.ndarray, np.ndarray], tuple] | None:
        """Coordinates (x and y arrays) source → storage CRS; None when they are the same."""
        if self._to_storage is None:
            return None
        return functools.partial(self._project, self._to_storage)

    def to_storage(self, geometry: np.ndarray) -> np.ndarray:
        return self._apply(self._to_storage, geometry)

    def to_province(self, geometry: np.ndarray) -> np.ndarray:
        return self._apply(self._to_province, geometry)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(1, thread_name_prefix="sdi-proj")
