"""The paging cursor (sdi.api.paging) without a database: tokens, signatures, seek SQL.

A cursor is a hint, never a trust boundary: a token that is not one of ours decodes to None
(the request then pages by offset), and a cursor written for another query has another
signature, so the provider ignores it. tests/api/test_paging.py checks the same over HTTP.
No fixture here touches the database.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zlib

import pytest

from sdi.api import paging
from sdi.api.paging import Cursor, SortKey


def token_of(body: dict, signed: bool = True) -> str:
    """A token written as Cursor.encode writes one (signed with the service's secret), from
    any body: what reaches the decoder's bounds only if the secret leaked."""
    payload = zlib.compress(json.dumps(body, separators=(",", ":")).encode())
    mac = hmac.new(paging.secret(), payload, hashlib.sha256).digest()[:16] if signed else b""
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


FILTER = {"op": "=", "args": [{"property": "commune_code"}, "06688"]}


@pytest.mark.parametrize(
    "cursor",
    [
        Cursor("abc", 0),
        Cursor("abc", 1000, ["2024-01-31", None, "42"], 123_456, FILTER),
        Cursor("abc", 10, ["Hạ Long", "7"], None, None),  # not ASCII: still URL-safe
    ],
)
def test_a_cursor_survives_its_round_trip(cursor: Cursor) -> None:
    token = cursor.encode()
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert Cursor.decode(token) == cursor


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a cursor",
        "%%%%",
        token_of({"v": 2, "s": "abc", "o": 0}),  # a version we do not write
        token_of({"v": 1, "o": 0}),  # no signature
        token_of({"v": 1, "s": "abc", "o": "ten"}),  # an offset that is not a number
        token_of({"v": 1, "s": "abc", "o": 0, "k": [1, 2]}),  # keys must be texts
        token_of({"v": 1, "s": "abc", "o": 0, "k": "42"}),  # keys must be a list
        token_of([1, 2, 3]),  # not an object
    ],
)
def test_a_token_that_is_not_one_of_ours_decodes_to_none(token: str) -> None:
    assert Cursor.decode(token) is None


def test_a_truncated_token_is_refused() -> None:
    token = Cursor("abc", 10, ["1"] * 50, 99, FILTER).encode()
    assert Cursor.decode(token[: len(token) // 2]) is None


def test_a_token_that_inflates_beyond_the_limit_is_refused() -> None:
    # A few kilobytes that inflate to more than a megabyte (a zip bomb) are not read whole.
    bomb = {"v": 1, "s": "abc", "o": 0, "f": "x" * (2 << 20)}
    token = token_of(bomb)
    assert len(token) < 10_000
    assert Cursor.decode(token) is None


def test_a_tampered_signature_does_not_match_the_request() -> None:
    """The provider seeks only when the cursor's signature is the request's own."""
    request = ("land.parcels_current", [107.0, 20.9, 107.1, 21.0], None, [], [("id", False)])
    signature = paging.signature(*request)
    cursor = Cursor.decode(Cursor(signature, 10, ["42"]).encode())
    assert cursor is not None and cursor.signature == signature

    tampered = dict(json.loads(zlib.decompress(base64.urlsafe_b64decode(_padded(cursor))[16:])))
    tampered["s"] = "0" * 20
    forged = Cursor.decode(token_of(tampered))
    assert forged is not None and forged.signature != signature


def test_a_token_we_did_not_sign_is_ignored_before_it_is_read() -> None:
    """Issue 13: an unsigned or re-signed token is not decoded, so its filter (which would
    dodge the query length limit) is never applied."""
    body = {"v": 1, "s": "abc", "o": 10, "f": FILTER}
    assert Cursor.decode(token_of(body)) is not None
    assert Cursor.decode(token_of(body, signed=False)) is None
    good = base64.urlsafe_b64decode(token_of(body) + "==")
    flipped = bytes([good[0] ^ 1]) + good[1:]
    assert Cursor.decode(base64.urlsafe_b64encode(flipped).decode()) is None


@pytest.mark.parametrize(
    "body",
    [
        {"v": 1, "s": "abc", "o": 10**30},  # out of range
        {"v": 1, "s": "abc", "o": -1},
        {"v": 1, "s": "abc", "o": 0, "n": 10**30},
        {"v": 1, "s": "abc", "o": True},
        {"v": 1, "s": "abc", "o": 0, "k": ["1"] * 1000},
        {"v": 1, "s": "x" * 10_000, "o": 0},
    ],
)
def test_a_signed_cursor_is_bounded_when_decoded(body: dict) -> None:
    assert Cursor.decode(token_of(body)) is None


def test_a_deeply_nested_cursor_is_refused_without_recursion() -> None:
    raw = ('{"v":1,"s":"abc","o":0,"f":' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    payload = zlib.compress(raw)
    mac = hmac.new(paging.secret(), payload, hashlib.sha256).digest()[:16]
    token = base64.urlsafe_b64encode(mac + payload).decode()
    assert Cursor.decode(token) is None


def _padded(cursor: Cursor) -> bytes:
    token = cursor.encode()
    return (token + "=" * (-len(token) % 4)).encode()


def test_the_signature_changes_with_whatever_defines_the_rows_and_their_order() -> None:
    base = ("land.parcels_current", [107.0, 20.9, 107.1, 21.0], None, [], [("id", False)], None)
    variants = [
        ("land.buildings_current", *base[1:]),
        (base[0], [107.0, 20.9, 107.2, 21.0], *base[2:]),
        (*base[:2], "2024-01-01/..", *base[3:]),
        (*base[:3], [("commune_code", "06688")], *base[4:]),
        (*base[:4], [("area_m2", True), ("id", False)], base[5]),
        (*base[:5], FILTER),
    ]
    signature = paging.signature(*base)
    assert paging.signature(*base) == signature  # deterministic
    assert len(signature) == 20
    assert len({paging.signature(*v) for v in variants} | {signature}) == len(variants) + 1


def test_seek_in_id_order_is_an_index_seek() -> None:
    condition, params = paging.seek_condition([SortKey("id", "bigint")], ["42"])
    assert condition.as_string(None) == '"t"."id" > %(k0)s::bigint'
    assert params == {"k0": "42"}


def test_seek_after_a_sort_key_with_nulls_last_and_first() -> None:
    ascending = [SortKey("area_m2", "double precision"), SortKey("id", "bigint")]
    condition, params = paging.seek_condition(ascending, ["12.5", "42"])
    assert condition.as_string(None) == (
        '((("t"."area_m2" > %(k0)s::double precision OR "t"."area_m2" IS NULL)) OR '
        '("t"."area_m2" = %(k0)s::double precision AND "t"."id" > %(k1)s::bigint))'
    )
    assert params == {"k0": "12.5", "k1": "42"}

    # After a NULL in ascending order (NULLS LAST) only other NULLs with a larger id remain.
    condition, params = paging.seek_condition(ascending, [None, "42"])
    assert condition.as_string(None) == '"t"."area_m2" IS NULL AND "t"."id" > %(k1)s::bigint'
    assert params == {"k1": "42"}

    descending = [SortKey("area_m2", "double precision", True), SortKey("id", "bigint")]
    condition, _ = paging.seek_condition(descending, [None, "42"])
    assert condition.as_string(None) == (
        '(("t"."area_m2" IS NOT NULL) OR ("t"."area_m2" IS NULL AND "t"."id" > %(k1)s::bigint))'
    )


def test_cursor_keys_that_do_not_fit_the_order_are_refused() -> None:
    with pytest.raises(ValueError, match="do not match"):
        paging.seek_condition([SortKey("id", "bigint")], ["1", "2"])


def test_order_by_puts_nulls_where_the_seek_expects_them() -> None:
    order = [SortKey("area_m2", "double precision", True), SortKey("id", "bigint")]
    assert paging.order_by(order).as_string(None) == (
        '"t"."area_m2" DESC NULLS FIRST, "t"."id" ASC NULLS LAST'
    )
