"""VNI-Windows → Unicode table (VNI is a composite encoding: base letter + mark byte).

Keys are VNI byte sequences written as latin-1 text (what a DBF reader that assumes
latin-1/cp1252 shows: "Quaûng Ninh" for "Quảng Ninh"); values are NFC Unicode letters.
Bytes not covered are identical to ASCII/latin-1 (including 0xEC ì, 0xED í, 0xCC Ì, 0xCD Í,
which VNI uses as the letters they look like).

Provenance: generated once from VNI's composition rule (tone marks ù ø û õ ï after a e o u y
ơ ư; â á à å ã ä for â ê ô with tones; ê é è ú ü ë for ă with tones; single bytes for the
i family, ỵ, ơ, ư and đ) and checked entry by entry against the table of the PyPI package
viparse 0.1.31 (``viparse/normalize/vni.py``, MIT licence, Copyright (c) 2026 minhtridinh).
All 128 of its entries agree except six it marks as derived (i + mark for ì/í and y + ï for
ỵ), which are kept as decode-only aliases below; ẳ/Ẳ (aú/AÚ), absent from viparse, follow
the rule.
"""

# Canonical VNI spelling of every Vietnamese letter; encode_vni() uses exactly these.
VNI_TO_UNICODE: dict[str, str] = {
    "Æ": "Ỉ",  # C6
    "æ": "ỉ",  # E6
    "Ì": "Ì",  # CC
    "ì": "ì",  # EC
    "Í": "Í",  # CD
    "í": "í",  # ED
    "Î": "Ỵ",  # CE
    "î": "ỵ",  # EE
    "Ñ": "Đ",  # D1
    "ñ": "đ",  # F1
    "Ò": "Ị",  # D2
    "ò": "ị",  # F2
    "Ó": "Ĩ",  # D3
    "ó": "ĩ",  # F3
    "Ô": "Ơ",  # D4
    "ô": "ơ",  # F4
    "Ö": "Ư",  # D6
    "ö": "ư",  # F6
    "AÀ": "Ầ",  # 41 C0
    "aà": "ầ",  # 61 E0
    "AÁ": "Ấ",  # 41 C1
    "aá": "ấ",  # 61 E1
    "AÂ": "Â",  # 41 C2
    "aâ": "â",  # 61 E2
    "AÃ": "Ẫ",  # 41 C3
    "aã": "ẫ",  # 61 E3
    "AÄ": "Ậ",  # 41 C4
    "aä": "ậ",  # 61 E4
    "AÅ": "Ẩ",  # 41 C5
    "aå": "ẩ",  # 61 E5
    "AÈ": "Ằ",  # 41 C8
    "aè": "ằ",  # 61 E8
    "AÉ": "Ắ",  # 41 C9
    "aé": "ắ",  # 61 E9
    "AÊ": "Ă",  # 41 CA
    "aê": "ă",  # 61 EA
    "AË": "Ặ",  # 41 CB
    "aë": "ặ",  # 61 EB
    "AÏ": "Ạ",  # 41 CF
    "aï": "ạ",  # 61 EF
    "AÕ": "Ã",  # 41 D5
    "aõ": "ã",  # 61 F5
    "AØ": "À",  # 41 D8
    "aø": "à",  # 61 F8
    "AÙ": "Á",  # 41 D9
    "aù": "á",  # 61 F9
    "AÚ": "Ẳ",  # 41 DA
    "aú": "ẳ",  # 61 FA
    "AÛ": "Ả",  # 41 DB
    "aû": "ả",  # 61 FB
    "AÜ": "Ẵ",  # 41 DC
    "aü": "ẵ",  # 61 FC
    "EÀ": "Ề",  # 45 C0
    "eà": "ề",  # 65 E0
    "EÁ": "Ế",  # 45 C1
    "eá": "ế",  # 65 E1
    "EÂ": "Ê",  # 45 C2
    "eâ": "ê",  # 65 E2
    "EÃ": "Ễ",  # 45 C3
    "eã": "ễ",  # 65 E3
    "EÄ": "Ệ",  # 45 C4
    "eä": "ệ",  # 65 E4
    "EÅ": "Ể",  # 45 C5
    "eå": "ể",  # 65 E5
    "EÏ": "Ẹ",  # 45 CF
    "eï": "ẹ",  # 65 EF
    "EÕ": "Ẽ",  # 45 D5
    "eõ": "ẽ",  # 65 F5
    "EØ": "È",  # 45 D8
    "eø": "è",  # 65 F8
    "EÙ": "É",  # 45 D9
    "eù": "é",  # 65 F9
    "EÛ": "Ẻ",  # 45 DB
    "eû": "ẻ",  # 65 FB
    "OÀ": "Ồ",  # 4F C0
    "oà": "ồ",  # 6F E0
    "OÁ": "Ố",  # 4F C1
    "oá": "ố",  # 6F E1
    "OÂ": "Ô",  # 4F C2
    "oâ": "ô",  # 6F E2
    "OÃ": "Ỗ",  # 4F C3
    "oã": "ỗ",  # 6F E3
    "OÄ": "Ộ",  # 4F C4
    "oä": "ộ",  # 6F E4
    "OÅ": "Ổ",  # 4F C5
    "oå": "ổ",  # 6F E5
    "OÏ": "Ọ",  # 4F CF
    "oï": "ọ",  # 6F EF
    "OÕ": "Õ",  # 4F D5
    "oõ": "õ",  # 6F F5
    "OØ": "Ò",  # 4F D8
    "oø": "ò",  # 6F F8
    "OÙ": "Ó",  # 4F D9
    "où": "ó",  # 6F F9
    "OÛ": "Ỏ",  # 4F DB
    "oû": "ỏ",  # 6F FB
    "UÏ": "Ụ",  # 55 CF
    "uï": "ụ",  # 75 EF
    "UÕ": "Ũ",  # 55 D5
    "uõ": "ũ",  # 75 F5
    "UØ": "Ù",  # 55 D8
    "uø": "ù",  # 75 F8
    "UÙ": "Ú",  # 55 D9
    "uù": "ú",  # 75 F9
    "UÛ": "Ủ",  # 55 DB
    "uû": "ủ",  # 75 FB
    "YÕ": "Ỹ",  # 59 D5
    "yõ": "ỹ",  # 79 F5
    "YØ": "Ỳ",  # 59 D8
    "yø": "ỳ",  # 79 F8
    "YÙ": "Ý",  # 59 D9
    "yù": "ý",  # 79 F9
    "YÛ": "Ỷ",  # 59 DB
    "yû": "ỷ",  # 79 FB
    "ÔÏ": "Ợ",  # D4 CF
    "ôï": "ợ",  # F4 EF
    "ÔÕ": "Ỡ",  # D4 D5
    "ôõ": "ỡ",  # F4 F5
    "ÔØ": "Ờ",  # D4 D8
    "ôø": "ờ",  # F4 F8
    "ÔÙ": "Ớ",  # D4 D9
    "ôù": "ớ",  # F4 F9
    "ÔÛ": "Ở",  # D4 DB
    "ôû": "ở",  # F4 FB
    "ÖÏ": "Ự",  # D6 CF
    "öï": "ự",  # F6 EF
    "ÖÕ": "Ữ",  # D6 D5
    "öõ": "ữ",  # F6 F5
    "ÖØ": "Ừ",  # D6 D8
    "öø": "ừ",  # F6 F8
    "ÖÙ": "Ứ",  # D6 D9
    "öù": "ứ",  # F6 F9
    "ÖÛ": "Ử",  # D6 DB
    "öû": "ử",  # F6 FB
}

# Other spellings met in converted files (also in the shared test vectors): decoded, never
# written.
VNI_DECODE_ALIASES: dict[str, str] = {
    "iù": "í",
    "iø": "ì",
    "IÙ": "Í",
    "IØ": "Ì",
    "yï": "ỵ",
    "YÏ": "Ỵ",
}
