"""Legacy Vietnamese text encodings that Python's codecs lack.

Old DBF/TAB/DGN attribute text from land offices is often TCVN3 (ABC). GDAL hands such
bytes over as latin-1 text ("Qu¶ng Ninh"); :func:`decode_legacy` turns them back into
Unicode NFC ("Quảng Ninh"). :func:`encode_tcvn3` is the inverse, used by the sample
generator to write files the way departments still deliver them.
"""

from __future__ import annotations

import unicodedata

from sdi.etl._tcvn3_table import TCVN3_TO_UNICODE

# latin-1 mojibake character → Unicode, for str.translate (runs in C).
_TCVN3_FROM_LATIN1 = {byte: char for byte, char in TCVN3_TO_UNICODE.items()}
# Unicode (NFC, precomposed) → TCVN3 byte. Combining marks are only used when decoding.
_UNICODE_TO_TCVN3 = {
    char: byte for byte, char in TCVN3_TO_UNICODE.items() if not unicodedata.combining(char)
}

SUPPORTED = ("utf-8", "cp1258", "tcvn3", "latin-1")


def decode_tcvn3_mojibake(text: str) -> str:
    """Decode TCVN3 bytes that were read as latin-1 into NFC Unicode.

    >>> decode_tcvn3_mojibake("Qu¶ng Ninh")
    'Quảng Ninh'
    """
    return unicodedata.normalize("NFC", text.translate(_TCVN3_FROM_LATIN1))


def decode_tcvn3(data: bytes) -> str:
    """Decode TCVN3 bytes into NFC Unicode.

    >>> decode_tcvn3(bytes.fromhex("48 b9 20 4c 6f 6e 67"))
    'Hạ Long'
    """
    return decode_tcvn3_mojibake(data.decode("latin-1"))


def encode_tcvn3(text: str) -> bytes:
    """Encode Unicode text as TCVN3; raises ValueError for characters TCVN3 cannot hold.

    >>> encode_tcvn3("Cẩm Phả").hex(" ")
    '43 c8 6d 20 50 68 b6'
    >>> decode_tcvn3(encode_tcvn3("Lý Thái Tổ"))
    'Lý Thái Tổ'
    """
    out = bytearray()
    for position, char in enumerate(unicodedata.normalize("NFC", text)):
        if char in _UNICODE_TO_TCVN3:
            out.append(_UNICODE_TO_TCVN3[char])
        elif ord(char) < 0x100 and ord(char) not in TCVN3_TO_UNICODE:
            out.append(ord(char))  # bytes TCVN3 leaves as in latin-1 (e.g. 0xFD 'ý')
        else:
            raise ValueError(f"{char!r} at position {position} of {text!r} has no TCVN3 byte")
    return bytes(out)
