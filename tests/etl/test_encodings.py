"""Legacy Vietnamese encodings against the shared test vectors (glibc iconv / viparse), and
detection of the encoding of realistic Vietnamese text."""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from sdi.etl.encodings import (
    assess,
    canonical_encoding,
    decode,
    decode_tcvn3,
    decode_tcvn3_mojibake,
    decode_vni,
    decode_vni_mojibake,
    detect_encoding,
    encode_cp1258,
    encode_tcvn3,
    encode_vni,
    is_vietnamese_word,
)
from sdi.samples import names

TEST_DATA = Path(__file__).parents[1] / "data"
VECTORS = list(
    csv.DictReader((TEST_DATA / "vn-legacy-encoding" / "vn_legacy_encoding_vectors.csv").open())
)
IDS = [r["unicode_nfc"] for r in VECTORS]


@pytest.mark.parametrize("row", VECTORS, ids=IDS)
def test_tcvn3_vectors_round_trip(row: dict) -> None:
    data = bytes.fromhex(row["tcvn3_hex"])
    assert decode_tcvn3(data) == row["unicode_nfc"]
    assert decode_tcvn3_mojibake(row["tcvn3_as_latin1_mojibake"]) == row["unicode_nfc"]
    assert encode_tcvn3(row["unicode_nfc"]) == data


def test_text_tcvn3_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="no TCVN3 byte"):
        encode_tcvn3("Hạ Long €")


@pytest.mark.parametrize("row", VECTORS, ids=IDS)
def test_vni_vectors_decode(row: dict) -> None:
    data = bytes.fromhex(row["vni_windows_hex"])
    assert decode_vni(data) == row["unicode_nfc"]
    assert decode_vni_mojibake(row["vni_as_cp1252_mojibake"]) == row["unicode_nfc"]
    assert decode(data, "vni") == row["unicode_nfc"]


@pytest.mark.parametrize("row", VECTORS, ids=IDS)
def test_vni_encoding_round_trips_and_matches_the_vectors(row: dict) -> None:
    """VNI writes í and ì as the single bytes ED and EC (VNI fonts have those glyphs); the
    shared vectors were made from viparse's reversed table, which spells them i + ù / i + ø.
    Both decode to the same text; we write the VNI-Windows spelling."""
    encoded = encode_vni(row["unicode_nfc"])
    assert decode_vni(encoded) == row["unicode_nfc"]
    expected = bytes.fromhex(row["vni_windows_hex"]).replace(b"i\xf9", b"\xed")
    assert encoded == expected.replace(b"i\xf8", b"\xec")


def test_vni_decodes_every_vietnamese_letter_both_cases() -> None:
    letters = "aàáảãạăằắẳẵặâầấẩẫậeèéẻẽẹêềếểễệiìíỉĩịoòóỏõọôồốổỗộơờớởỡợuùúủũụưừứửữựyỳýỷỹỵđ"
    for text in (letters, letters.upper()):
        assert decode_vni(encode_vni(text)) == text
        assert decode_tcvn3(encode_tcvn3(text.lower())) == text.lower()
        assert decode(encode_cp1258(text), "cp1258") == text


def test_vni_accepts_mixed_case_marks_and_cp1252_text() -> None:
    assert decode_vni_mojibake("AÙo") == "Áo"  # capital base, lowercase mark
    assert decode_vni_mojibake("Quaûng Ninh") == "Quảng Ninh"
    with pytest.raises(ValueError, match="no VNI spelling"):
        encode_vni("Hạ Long €")


def test_cp1258_is_written_the_windows_way_and_decoded_to_nfc() -> None:
    assert encode_cp1258("Quảng") == b"Qua\xd2ng"  # base letter + combining hook
    assert encode_cp1258("Bà") == b"B\xe0"  # precomposed where cp1258 has the letter
    text = decode(b"Qua\xd2ng", "cp1258")
    assert text == "Quảng" and unicodedata.is_normalized("NFC", text)


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("UTF-8", "utf-8"),
        ("utf8", "utf-8"),
        ("1258", "cp1258"),
        ("ANSI 1258", "cp1258"),
        ("WindowsVietnamese", "cp1258"),
        ("WindowsLatin1", "cp1252"),
        ("ISO 88591", "latin-1"),
        ("ISO-8859-1", "latin-1"),
        ("Neutral", None),
        ("nonsense", None),
    ],
)
def test_declared_encoding_names(declared: str, expected: str | None) -> None:
    assert canonical_encoding(declared) == expected


@pytest.mark.parametrize(
    ("word", "ok"),
    [
        ("Quảng", True),
        ("nghiêng", True),
        ("khuya", True),
        ("thuở", True),
        ("QUẢNG", True),
        ("Qu¶ng", False),  # TCVN3 read as latin-1
        ("Quaûng", False),  # VNI read as latin-1
        ("QuaÒng", False),  # cp1258 read as latin-1
        ("Quảngg", False),
        ("Hảà", False),  # two tone marks
    ],
)
def test_vietnamese_syllables(word: str, ok: bool) -> None:
    assert is_vietnamese_word(word) is ok


def _realistic_text(n: int = 300) -> list[str]:
    rng = np.random.default_rng(7)
    return (
        list(names.person_names(rng, n))
        + names.street_names(rng, 80)
        + list(names.company_names(rng, 40))
        + [r["unicode_nfc"] for r in VECTORS]
    )


ENCODERS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "tcvn3": encode_tcvn3,
    "vni": encode_vni,
    "cp1258": encode_cp1258,
}


@pytest.mark.parametrize("encoding", list(ENCODERS))
def test_detect_realistic_vietnamese_text(encoding: str) -> None:
    samples = [ENCODERS[encoding](t) for t in _realistic_text()]
    found, evidence = detect_encoding(samples)
    assert found == encoding, evidence
    # small samples too: every window of five values
    for start in range(0, len(samples), 5):
        assert detect_encoding(samples[start : start + 5])[0] == encoding


def test_detection_evidence_is_readable() -> None:
    samples = [encode_tcvn3(t) for t in _realistic_text(40)]
    found, evidence = detect_encoding(samples)
    assert found == "tcvn3"
    result = assess(samples)
    assert evidence.startswith(f"TCVN3: {result.valid['tcvn3']} of {result.non_ascii} text values")
    assert "none are valid UTF-8" in evidence
    assert "→" in evidence  # an example word, as stored and as decoded


def test_pure_ascii_falls_back_to_utf8() -> None:
    found, evidence = detect_encoding([b"ODT", b"ONT+CLN", b"06685", b"Khu 3"])
    assert found == "utf-8"
    assert evidence.startswith("plain ASCII")


def test_text_no_vietnamese_encoding_fits_is_read_byte_transparently() -> None:
    found, evidence = detect_encoding(["Café crème".encode("latin-1"), b"\xa4\xa4\xa4"])
    assert found == "latin-1"
    assert "no Vietnamese encoding fits" in evidence and "source.encoding" in evidence


def test_utf8_wins_whenever_every_value_is_valid_utf8() -> None:
    found, _ = detect_encoding(["北京市".encode(), "Hạ Long".encode()])
    assert found == "utf-8"
