"""Legacy Vietnamese encodings against the shared test vectors (glibc iconv / viparse)."""

from __future__ import annotations

import csv

import pytest

from sdi.etl.encodings import decode_tcvn3, decode_tcvn3_mojibake, encode_tcvn3
from tests.conftest import TEST_DATA

VECTORS = list(
    csv.DictReader((TEST_DATA / "vn-legacy-encoding" / "vn_legacy_encoding_vectors.csv").open())
)


@pytest.mark.parametrize("row", VECTORS, ids=[r["unicode_nfc"] for r in VECTORS])
def test_tcvn3_vectors_round_trip(row: dict) -> None:
    data = bytes.fromhex(row["tcvn3_hex"])
    assert decode_tcvn3(data) == row["unicode_nfc"]
    assert decode_tcvn3_mojibake(row["tcvn3_as_latin1_mojibake"]) == row["unicode_nfc"]
    assert encode_tcvn3(row["unicode_nfc"]) == data


def test_text_tcvn3_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="no TCVN3 byte"):
        encode_tcvn3("Hạ Long €")
