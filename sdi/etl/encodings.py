"""Text encodings of delivered files, including the legacy Vietnamese ones Python lacks.

Old DBF/TAB/DGN attribute text from land offices is often TCVN3 (ABC) or VNI-Windows. Read
as latin-1 they show as "Qu¶ng Ninh" (TCVN3) or "Quaûng Ninh" (VNI); the functions here turn
them back into Unicode NFC ("Quảng Ninh"). :func:`detect_encoding` tells UTF-8, TCVN3, VNI
and cp1258 apart from the raw bytes of a file's text values (``encoding: auto``) and says
why, in words an analyst can check. The ``encode_*`` functions write text the way
departments still deliver it (sample generator, test fixtures).

Encoding names used throughout: ``utf-8``, ``utf-8-sig``, ``cp1258``, ``tcvn3``, ``vni``,
``latin-1`` (the job spec's choices) and, for what a ``.cpg``/MapInfo charset declares, any
other Python codec name (e.g. ``cp1252``).
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sdi.etl._tcvn3_table import TCVN3_TO_UNICODE
from sdi.etl._vni_table import VNI_DECODE_ALIASES, VNI_TO_UNICODE

SUPPORTED = ("utf-8", "utf-8-sig", "cp1258", "tcvn3", "vni", "latin-1")
LEGACY = ("tcvn3", "vni")  # no Python codec: bytes are decoded through latin-1 text

# ---------------------------------------------------------------------------------------
# TCVN3 (one byte per letter; five bytes are combining tone marks)

# latin-1 mojibake character → Unicode, for str.translate (runs in C).
_TCVN3_FROM_LATIN1 = {byte: char for byte, char in TCVN3_TO_UNICODE.items()}
# Unicode (NFC, precomposed) → TCVN3 byte. Combining marks are only used when decoding.
_UNICODE_TO_TCVN3 = {
    char: byte for byte, char in TCVN3_TO_UNICODE.items() if not unicodedata.combining(char)
}


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


# ---------------------------------------------------------------------------------------
# VNI-Windows (base letter followed by a mark byte; a few letters are single bytes)


def _vni_decode_table() -> dict[str, str]:
    table = dict(VNI_TO_UNICODE)
    table.update(VNI_DECODE_ALIASES)
    # Typists mix cases ("Aù" for "Á" in title-case text): the base letter decides the case.
    for seq, char in list(table.items()):
        if len(seq) == 2 and seq[0].isalpha():
            for mark in {seq[1].lower(), seq[1].upper()} - {seq[1]}:
                table.setdefault(seq[0] + mark, char)
    return table


_VNI_DECODE = _vni_decode_table()
# Longest sequences first, so "oâ" (ô) wins over a bare "o" and "ôù" (ớ) over "ô" (ơ).
_VNI_PATTERN = re.compile(
    "|".join(re.escape(s) for s in sorted(_VNI_DECODE, key=len, reverse=True) if s)
)
_UNICODE_TO_VNI = {char: seq for seq, char in VNI_TO_UNICODE.items()}
# cp1252's letters in 0x80-0x9F back to the latin-1 character of the same byte.
_CP1252_TO_LATIN1 = {
    ord(bytes([b]).decode("cp1252")): chr(b)
    for b in range(0x80, 0xA0)
    if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
}


def mojibake_bytes(text: str) -> bytes | None:
    """The bytes behind text that was decoded as cp1252 or latin-1, or None when the text
    holds characters neither has (it is real Unicode, not mojibake).

    >>> mojibake_bytes("Qu¶ng"), mojibake_bytes("Quảng")
    (b'Qu\\xb6ng', None)
    """
    try:
        return text.translate(_CP1252_TO_LATIN1).encode("latin-1")
    except UnicodeEncodeError:
        return None


def decode_vni_mojibake(text: str) -> str:
    """Decode VNI-Windows bytes that were read as cp1252 or latin-1 into NFC Unicode.

    >>> decode_vni_mojibake("Quaûng Ninh")
    'Quảng Ninh'
    >>> decode_vni_mojibake("Ñaát ôû taïi ñoâ thò")
    'Đất ở tại đô thị'
    """
    text = text.translate(_CP1252_TO_LATIN1)
    return unicodedata.normalize("NFC", _VNI_PATTERN.sub(lambda m: _VNI_DECODE[m[0]], text))


def decode_vni(data: bytes) -> str:
    """Decode VNI-Windows bytes into NFC Unicode.

    >>> decode_vni(bytes.fromhex("48 61 ef 20 4c 6f 6e 67"))
    'Hạ Long'
    """
    return decode_vni_mojibake(data.decode("latin-1"))


def encode_vni(text: str) -> bytes:
    """Encode Unicode text as VNI-Windows; raises ValueError for what VNI cannot hold.

    >>> encode_vni("Cẩm Phả").hex(" ")
    '43 61 e5 6d 20 50 68 61 fb'
    """
    out = bytearray()
    for position, char in enumerate(unicodedata.normalize("NFC", text)):
        if char in _UNICODE_TO_VNI:
            out += _UNICODE_TO_VNI[char].encode("latin-1")
        elif ord(char) < 0x80:
            out.append(ord(char))
        else:
            raise ValueError(f"{char!r} at position {position} of {text!r} has no VNI spelling")
    return bytes(out)


# ---------------------------------------------------------------------------------------
# cp1258 (Windows Vietnamese: some precomposed letters, tone marks as combining bytes)

_TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"


def encode_cp1258(text: str) -> bytes:
    """Encode Unicode as Windows-1258 the way Windows does: precomposed where cp1258 has
    the letter, otherwise base letter + combining tone mark.

    >>> encode_cp1258("Quảng Ninh").hex(" ")
    '51 75 61 d2 6e 67 20 4e 69 6e 68'
    >>> decode(encode_cp1258("Đất ở tại đô thị"), "cp1258")
    'Đất ở tại đô thị'
    """
    out = bytearray()
    for char in unicodedata.normalize("NFC", text):
        try:
            out += char.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        decomposed = unicodedata.normalize("NFD", char)
        base = "".join(c for c in decomposed if c not in _TONE_MARKS)
        tones = "".join(c for c in decomposed if c in _TONE_MARKS)
        out += (unicodedata.normalize("NFC", base) + tones).encode("cp1258")
    return bytes(out)


# ---------------------------------------------------------------------------------------
# One entry point for bytes → text, and names as files declare them


def decode(data: bytes, encoding: str) -> str:
    """Decode bytes in one of the product's encodings (or any Python codec) into NFC text.

    Raises UnicodeDecodeError when the bytes are not valid in that encoding.

    >>> decode(bytes.fromhex("51 75 b6 6e 67"), "tcvn3")
    'Quảng'
    """
    if encoding == "tcvn3":
        return decode_tcvn3(data)
    if encoding == "vni":
        return decode_vni(data)
    text = data.decode(encoding)
    if encoding in ("utf-8-sig",) and text.startswith("\ufeff"):
        text = text[1:]
    return unicodedata.normalize("NFC", text)


def canonical_encoding(name: str) -> str | None:
    """The product's name for an encoding as a spec, ``.cpg`` file or MapInfo charset says it.

    >>> [canonical_encoding(n) for n in ("UTF-8", "1258", "ANSI 1252", "88591", "Neutral")]
    ['utf-8', 'cp1258', 'cp1252', 'latin-1', None]
    """
    raw = name.strip().strip('"').strip()
    key = raw.lower().replace("_", "-").replace(" ", "")
    aliases = {
        "utf8": "utf-8",
        "utf-8": "utf-8",
        "utf-8-sig": "utf-8-sig",
        "tcvn3": "tcvn3",
        "tcvn5712-1": "tcvn3",
        "tcvn": "tcvn3",
        "abc": "tcvn3",
        "vni": "vni",
        "vni-windows": "vni",
        "windowsvietnamese": "cp1258",
        "windowslatin1": "cp1252",
        "iso8859-1": "latin-1",
        "iso-8859-1": "latin-1",
        "88591": "latin-1",
        "iso88591": "latin-1",
        "latin1": "latin-1",
        "latin-1": "latin-1",
        "neutral": None,
        "system": None,
        "": None,
    }
    if key in aliases:
        return aliases[key]
    digits = key.removeprefix("ansi").removeprefix("cp").removeprefix("windows-")
    if digits.isdigit():
        key = f"cp{digits}"
    try:
        python_name = codecs.lookup(key).name
    except LookupError:
        return None
    return {"utf-8": "utf-8", "cp1258": "cp1258", "iso8859-1": "latin-1"}.get(
        python_name, python_name
    )


# ---------------------------------------------------------------------------------------
# Detection

_ONSETS = "ngh|ng|nh|ch|gh|gi|kh|ph|th|tr|qu|b|c|d|đ|g|h|k|l|m|n|p|r|s|t|v|x"
_GLIDED = (  # vowel clusters ending in a glide: no final consonant may follow
    "iêu yêu oai oay oao oeo uây uôi ươi ươu uyu ai ao au ay âu ây eo êu iu oi ôi ơi ui ưi ưu"
)
_OPEN = (  # vowel clusters a final consonant may follow
    "uyê uya iê yê oa oă oe ua uâ uê uô uơ uy ưa ươ oo ia a ă â e ê i o ô ơ u ư y"
)


def _alternatives(words: str) -> str:
    return "|".join(sorted(words.split(), key=len, reverse=True))


_SYLLABLE = re.compile(
    rf"(?:{_ONSETS})?(?:(?:{_alternatives(_GLIDED)})|(?:{_alternatives(_OPEN)})"
    r"(?:ch|ng|nh|c|m|n|p|t)?)"
)
# Words are separated by spaces and ASCII punctuation only: a stray "¶" must stay inside
# its word ("Qu¶ng") and make it fail, not split it into two harmless ASCII halves.
_WORD_SPLIT = re.compile(r"[\s!-/:-@\[-`{-~]+")
_CANDIDATES = ("utf-8", "tcvn3", "vni", "cp1258")
_LABELS = {"utf-8": "UTF-8", "tcvn3": "TCVN3", "vni": "VNI", "cp1258": "cp1258"}


def is_vietnamese_word(word: str) -> bool:
    """Whether a word (NFC) is a well-formed Vietnamese syllable: letters only, one tone.

    >>> [is_vietnamese_word(w) for w in ("Quảng", "NGHIÊNG", "Qu¶ng", "Quaûng", "Haï")]
    [True, True, False, False, False]
    """
    if not word or not all(unicodedata.category(c)[0] in "LM" for c in word):
        return False
    if not (word.islower() or word.isupper() or (word[0].isupper() and word[1:].islower())):
        return False  # "QuaÒng": a capital inside a word is a stray byte, not a letter
    decomposed = unicodedata.normalize("NFD", word.lower())
    if sum(c in _TONE_MARKS for c in decomposed) > 1:
        return False
    bare = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONE_MARKS))
    return _SYLLABLE.fullmatch(bare) is not None


def non_ascii_words(text: str) -> list[str]:
    """The words of a text that have a non-ASCII character and at least one letter."""
    return [
        w
        for w in _WORD_SPLIT.split(text)
        if w and not w.isascii() and any(unicodedata.category(c)[0] == "L" for c in w)
    ]


@dataclass
class Detection:
    """What :func:`assess` found in a sample of text values."""

    values: int  # text values looked at
    non_ascii: int  # of which with a byte above 127
    valid: dict[str, int] = field(default_factory=dict)  # encoding → values read as Vietnamese
    utf8_decodable: int = 0  # values that are valid UTF-8
    encoding: str = "utf-8"
    evidence: str = ""


def valid_values(samples: list[bytes], encoding: str) -> tuple[int, Counter[str]]:
    valid, words = 0, Counter[str]()
    for data in samples:
        try:
            text = decode(data, encoding)
        except UnicodeDecodeError:
            continue
        found = non_ascii_words(text)
        if found and all(is_vietnamese_word(w) for w in found):
            valid += 1
            words.update(found)
    return valid, words


def _utf8_ok(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _typical_bytes(samples: list[bytes]) -> str:
    counts = Counter(b for data in samples for b in data if b > 0x7F)
    shown = []
    for byte, _ in counts.most_common(5):
        char = bytes([byte]).decode("latin-1")
        shown.append(char if char.isprintable() and byte != 0xAD else f"\\x{byte:02X}")
    return " ".join(shown)


def assess(samples: Iterable[bytes]) -> Detection:
    """Score the candidate encodings on raw text values; see :func:`detect_encoding`."""
    samples = [s for s in samples if s]
    non_ascii = [s for s in samples if not s.isascii()]
    result = Detection(values=len(samples), non_ascii=len(non_ascii))
    if not non_ascii:
        result.encoding = "utf-8"
        result.evidence = (
            f"plain ASCII: none of {len(samples)} text values has a byte above 127 "
            "(read as UTF-8; every encoding gives the same text)"
        )
        return result
    result.utf8_decodable = sum(_utf8_ok(s) for s in non_ascii)
    words: dict[str, Counter] = {}
    for candidate in _CANDIDATES:
        result.valid[candidate], words[candidate] = valid_values(non_ascii, candidate)
    n = len(non_ascii)
    if result.utf8_decodable == n:
        best = "utf-8"
    else:
        best = max(_CANDIDATES, key=lambda c: result.valid[c])  # ties: first in order
        if result.valid[best] * 2 < n:
            best = "latin-1"
    result.encoding = best
    others = ", ".join(
        f"{_LABELS[c]} {result.valid[c]}" for c in _CANDIDATES if c != best and c != "utf-8"
    )
    utf8 = (
        "none are valid UTF-8"
        if result.utf8_decodable == 0
        else f"{result.utf8_decodable} are valid UTF-8"
    )
    if best == "latin-1":
        result.evidence = (
            f"no Vietnamese encoding fits: of {n} text values with bytes above 127, "
            f"{utf8}; read as Vietnamese: TCVN3 {result.valid['tcvn3']}, VNI "
            f"{result.valid['vni']}, cp1258 {result.valid['cp1258']}; read as latin-1 "
            "(set source.encoding in the job spec if you know the encoding)"
        )
        return result
    example = ""
    if words[best]:
        word = words[best].most_common(1)[0][0]
        raw = next(
            (
                w
                for s in non_ascii
                for w in _WORD_SPLIT.split(s.decode("latin-1"))
                if _safe_decode(w, best) == word
            ),
            None,
        )
        if raw is not None and raw != word:
            example = f'; e.g. "{raw}" → "{word}"'
    if best == "utf-8":
        result.evidence = (
            f"UTF-8: all {n} text values with bytes above 127 are valid UTF-8 "
            f"({result.valid['utf-8']} read as Vietnamese words){example}"
        )
    else:
        letters = _typical_bytes(non_ascii)
        result.evidence = (
            f"{_LABELS[best]}: {result.valid[best]} of {n} text values with bytes above 127 "
            f"read as Vietnamese words in {_LABELS[best]} ({letters} …), {utf8}; "
            f"as other encodings: {others}{example}"
        )
    return result


def _safe_decode(latin1_word: str, encoding: str) -> str | None:
    try:
        return decode(latin1_word.encode("latin-1"), encoding)
    except UnicodeDecodeError:
        return None


def detect_encoding(samples: list[bytes]) -> tuple[str, str]:
    """The encoding of a file's text values, and the evidence for it in words.

    Every value with a byte above 127 is decoded as UTF-8, TCVN3, VNI and cp1258 and its
    words are checked against the shape of Vietnamese syllables (letters only, one tone
    mark, a valid onset + vowel cluster + final). UTF-8 wins when all such values are valid
    UTF-8; otherwise the encoding under which most values read as Vietnamese, if that is at
    least half of them; otherwise ``latin-1`` (byte-transparent) with evidence saying
    nothing fitted. Pure ASCII is reported as UTF-8.

    >>> detect_encoding([b"Qu\\xb6ng Ninh", b"H\\xb9 Long", b"C\\xc8m Ph\\xb6"])[0]
    'tcvn3'
    """
    result = assess(samples)
    return result.encoding, result.evidence
