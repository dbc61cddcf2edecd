"""What every reader shares: the batch it yields, and the decoding of its text.

Each batch carries its attribute frame with text already decoded to Unicode NFC, the
geometries in the source CRS, the source row number of its first row so rejects can point
back at the file, and the encoding its text was decoded with plus the reason
(``encoding: auto`` detects it; see ``docs/formats.md``).
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from sdi.errors import SourceError
from sdi.etl import encodings

SAMPLE_VALUES = 5_000  # distinct text values looked at to detect an encoding
ENCODING_CHOICES = "auto, utf-8, cp1258, tcvn3, vni, latin-1"


@dataclass
class Batch:
    path: Path
    first_row: int  # source row number of frame.iloc[0] (CSV: line number; others: feature)
    frame: pd.DataFrame
    # shapely geometries in the source CRS; from GDAL formats decoded from ``wkb`` when first
    # asked for (a re-run skips unchanged rows before that: their WKB is only hashed)
    shapes: np.ndarray | None
    # How the text was decoded ("tcvn3", "utf-8", "cp1258", …; None when there is no text to
    # decode, e.g. a raster) and why: the job spec, the file's .cpg, or auto-detection evidence.
    # With encoding: auto the value on a file's last batch is final (earlier batches can only
    # differ when all their text was plain ASCII, which every encoding reads the same way).
    encoding: str | None = None
    encoding_evidence: str | None = None
    # The geometries' WKB as delivered (GDAL formats), as GDAL handed it over in Arrow.
    wkb: pa.BinaryArray | None = None

    @property
    def geometry(self) -> np.ndarray | None:
        if self.shapes is None and self.wkb is not None:
            self.shapes = geometries(self.wkb.to_numpy(zero_copy_only=False))
        return self.shapes

    @geometry.setter
    def geometry(self, value: np.ndarray | None) -> None:
        self.shapes = value

    def slice(self, start: int, stop: int) -> Batch:
        """Rows ``start`` to ``stop`` (positions) as a batch of their own."""
        return dataclasses.replace(
            self,
            first_row=self.first_row + start,
            frame=self.frame.iloc[start:stop].reset_index(drop=True),
            shapes=None if self.shapes is None else self.shapes[start:stop],
            wkb=None if self.wkb is None else self.wkb.slice(start, stop - start),
        )

    def subset(self, keep: np.ndarray) -> Batch:
        """The rows where ``keep`` is true (geometries not decoded yet stay so)."""
        return Batch(
            self.path,
            self.first_row,
            self.frame[keep],
            None if self.shapes is None else self.shapes[keep],
            self.encoding,
            self.encoding_evidence,
            None if self.wkb is None else self.wkb.filter(pa.array(keep)),
        )


# ---------------------------------------------------------------------------------------
# Text decoding


class _MixedEncoding(Exception):
    def __init__(self, column: str, value: str) -> None:
        self.column, self.value = column, value


def _is_text(series: pd.Series) -> bool:
    return series.dtype == object or pd.api.types.is_string_dtype(series)


def _nfc(text: str) -> str:
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


class TextDecoder:
    """Decides how one file's text is decoded and decodes frames.

    ``raw=True``: text values are latin-1 strings standing for the file's bytes (Shapefile
    read as ISO-8859-1, MapInfo/DGN bytes, CSV read as latin-1). ``raw=False``: the format
    stores Unicode; a legacy encoding in the spec then means the text was mis-read as latin-1
    or cp1252 before it was saved ("Qu¶ng Ninh" in a GeoJSON) and is repaired.
    """

    def __init__(
        self,
        path: Path,
        requested: str,
        *,
        raw: bool,
        declared: str | None = None,
        declared_by: str | None = None,
        format_name: str = "file",
        decoded: bool = False,
    ) -> None:
        self.path = path
        self.requested = requested
        self.raw = raw
        self.decoded = decoded  # already decoded in the requested encoding: only NFC is left
        self.declared = declared
        self.declared_by = declared_by
        self.format_name = format_name
        self.encoding: str | None = None
        self.evidence: str | None = None
        self.final = False
        if requested != "auto":
            self.encoding = "utf-8" if requested == "utf-8-sig" and raw else requested
            self.final = True
            self.evidence = f"source.encoding: {requested} in the job spec"
            if declared and declared != self.encoding and raw:
                self.evidence += f" (the file's {declared_by} says {declared}; the job spec wins)"
            if not raw and not decoded and requested in ("tcvn3", "vni", "cp1258"):
                self.evidence += (
                    f"; {format_name} stores Unicode, so its text is taken as {requested} "
                    "bytes that were read as latin-1/cp1252 before the file was saved"
                )

    # -- deciding --------------------------------------------------------------------------
    @staticmethod
    def _strings(frame: pd.DataFrame, names: list[str]) -> list[str]:
        seen: dict[str, None] = dict.fromkeys(n for n in names if isinstance(n, str))
        for column in frame.columns:
            if not _is_text(frame[column]):
                continue
            for value in pd.unique(frame[column].dropna()):
                if isinstance(value, str) and value:
                    seen[value] = None
                    if len(seen) >= SAMPLE_VALUES:
                        return list(seen)
        return list(seen)

    def decide(self, frame: pd.DataFrame, names: list[str]) -> None:
        if self.final:
            return
        strings = self._strings(frame, names)
        if self.raw:
            self._decide_raw([s.encode("latin-1") for s in strings])
        else:
            self._decide_unicode(strings)

    def _decide_raw(self, samples: list[bytes]) -> None:
        found = encodings.assess(samples)
        declared, by = self.declared, self.declared_by
        if found.non_ascii == 0:
            self.encoding = declared or "utf-8"
            self.evidence = (f"{by} says {declared}; " if declared else "") + found.evidence
            return  # not final: a later batch may hold the first non-ASCII text
        self.final = True
        if declared is None or declared == found.encoding:
            self.encoding = found.encoding
            self.evidence = found.evidence
            if declared:
                self.evidence = f"{by} says {declared}, and the text agrees: {found.evidence}"
            return
        non_ascii = [s for s in samples if not s.isascii()]
        decodable = sum(_decodes(s, declared) for s in non_ascii)
        declared_valid = found.valid.get(declared)
        if declared_valid is None:
            declared_valid = encodings.valid_values(non_ascii, declared)[0]
        if found.encoding == "latin-1" or (
            decodable == len(non_ascii) and found.valid[found.encoding] <= declared_valid
        ):
            self.encoding = declared
            self.evidence = f"{by} says {declared} (kept: nothing fits better); {found.evidence}"
            return
        self.encoding = found.encoding
        broken = len(non_ascii) - decodable
        why = f"{broken} of {len(non_ascii)} values are not valid {declared}" if broken else ""
        why = why or f"only {declared_valid} of {len(non_ascii)} values read as Vietnamese in it"
        self.evidence = f"{by} says {declared}, but {why}; {found.evidence}"

    def _decide_unicode(self, strings: list[str]) -> None:
        non_ascii = [s for s in strings if not s.isascii()]
        if not non_ascii:
            self.encoding = "utf-8"
            self.evidence = (
                f"{self.format_name} stores text as UTF-8 (plain ASCII in the first "
                f"{len(strings)} text values)"
            )
            return
        self.final = True
        words = [w for s in non_ascii for w in encodings.non_ascii_words(_nfc(s))]
        as_is = sum(encodings.is_vietnamese_word(w) for w in words)
        mojibake = [encodings.mojibake_bytes(s) for s in non_ascii]
        if all(m is not None for m in mojibake):
            found = encodings.assess(m for m in mojibake if m is not None)
            if found.encoding in ("tcvn3", "vni", "cp1258"):
                repaired = found.valid[found.encoding]
                as_is_values = sum(
                    all(encodings.is_vietnamese_word(w) for w in encodings.non_ascii_words(s))
                    for s in non_ascii
                )
                if repaired > as_is_values:
                    self.encoding = found.encoding
                    self.evidence = (
                        f"{self.format_name} holds Unicode text that is really "
                        f"{found.encoding} read as latin-1/cp1252 before it was saved: "
                        f"{found.evidence}"
                    )
                    return
        self.encoding = "utf-8"
        self.evidence = (
            f"{self.format_name} stores text as UTF-8: {len(non_ascii)} text values have "
            f"non-ASCII letters; {as_is} of {len(words)} such words are Vietnamese"
        )

    # -- decoding --------------------------------------------------------------------------
    def _function(self) -> Callable[[str], str]:
        encoding = self.encoding or "utf-8"
        if self.decoded:
            return _nfc
        if self.raw:
            if encoding == "tcvn3":
                return encodings.decode_tcvn3_mojibake
            if encoding == "vni":
                return encodings.decode_vni_mojibake
            if encoding == "latin-1":
                return _nfc
            return lambda s: encodings.decode(s.encode("latin-1"), encoding)
        if encoding in ("tcvn3", "vni", "cp1258"):

            def repair(s: str) -> str:
                data = encodings.mojibake_bytes(s)
                return _nfc(s) if data is None else encodings.decode(data, encoding)

            return repair
        return _nfc

    def decode_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Decode every text column and the column names; raises _MixedEncoding."""
        function = self._function()

        def safe(value: str, column: str) -> str:
            try:
                return function(value)
            except UnicodeDecodeError:
                raise _MixedEncoding(column, value) from None

        frame.columns = [
            safe(c, "(column names)").lstrip("\ufeff") if isinstance(c, str) else c
            for c in frame.columns
        ]
        for column in frame.columns:
            if not _is_text(frame[column]):
                continue
            uniques = pd.unique(frame[column].dropna())
            mapping = {u: safe(u, column) for u in uniques if isinstance(u, str)}
            if any(k != v for k, v in mapping.items()):
                frame[column] = frame[column].map(mapping, na_action="ignore")
        return frame

    def failure(self, error: _MixedEncoding, frame: pd.DataFrame, first_row: int) -> SourceError:
        """A clear error for text that is not valid in the chosen encoding."""
        where = "the column names"
        if error.column in frame.columns:
            column = frame[error.column]
            position = int(np.flatnonzero((column == error.value).to_numpy(na_value=False))[0])
            where = f"row {first_row + position}, column {error.column}"
        data = error.value.encode("latin-1") if self.raw else error.value.encode()
        guess, _ = encodings.detect_encoding([data])
        hint = f" (that value looks like {guess})" if guess not in ("latin-1",) else ""
        if self.requested == "auto":
            return SourceError(
                f"{self.path}: {where}: not valid {self.encoding} text{hint}, although "
                f"encoding: auto chose {self.encoding} from the rows before it "
                f"({self.evidence}); the file mixes encodings: set source.encoding in the job "
                f"spec ({ENCODING_CHOICES}) or fix the file"
            )
        return SourceError(
            f"{self.path}: {where}: not valid {self.encoding} text{hint}; set source.encoding "
            f"in the job spec ({ENCODING_CHOICES}; auto detects it)"
        )

    def batch(
        self,
        path: Path,
        first_row: int,
        frame: pd.DataFrame,
        geometry: np.ndarray | None,
        names: list[str] | None = None,
    ) -> Batch:
        self.decide(frame, names if names is not None else list(map(str, frame.columns)))
        try:
            frame = self.decode_frame(frame)
        except _MixedEncoding as exc:
            raise self.failure(exc, frame, first_row) from None
        return Batch(path, first_row, frame, geometry, self.encoding, self.evidence)


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        encodings.decode(data, encoding)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def geometries(wkb: np.ndarray) -> np.ndarray:
    """WKB → shapely; rings GDAL leaves unclosed are closed, undecodable ones become None
    (the row is then rejected as "no geometry" instead of failing the file)."""
    geometry = shapely.from_wkb(wkb, on_invalid="fix")
    if shapely.has_z(geometry).any():  # the warehouse is 2D (KML and DGN carry a Z of 0)
        geometry = shapely.force_2d(geometry)
    return geometry


def short_message(exc: Exception) -> str:
    """An exception's message on one line, cut short (GDAL and pandas can be verbose)."""
    return " ".join(str(exc).split())[:300]
