"""Duplicate keys within a delivery (sdi/etl/validate.py: FirstSeen): across batches, within
one, a hash collision that is not a duplicate, and a delivery made mostly of duplicates."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from sdi.etl import validate
from sdi.etl.normalise import Issues
from sdi.etl.validate import FirstSeen


def _check(seen: FirstSeen, keys: list, first_row: int, path: str = "a.shp") -> Issues:
    issues = Issues(len(keys))
    rows = np.arange(first_row, first_row + len(keys))
    seen.check(pd.Series(keys, dtype="str"), rows, path, issues)
    return issues


def test_repeats_across_and_within_batches_name_the_first_row() -> None:
    seen = FirstSeen("natural key")
    first = _check(seen, ["k1", "k2", None, "k3"], 1)
    assert first.ok.tolist() == [True, True, True, True]
    second = _check(seen, ["k4", "k2", "k4", "k5"], 5, "b.shp")
    assert second.reasons.tolist() == [
        None,
        "duplicate natural key 'k2' (first seen at a.shp row 2)",
        "duplicate natural key 'k4' (first seen at b.shp row 5)",
        None,
    ]


def test_a_hash_collision_is_not_a_duplicate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every value hashed alike: only equal values may be flagged."""
    constant = pd.util.hash_pandas_object

    def collide(series: pd.Series, index: bool = False) -> pd.Series:
        return pd.Series(np.zeros(len(constant(series, index=index)), dtype=np.uint64))

    monkeypatch.setattr(validate.pd.util, "hash_pandas_object", collide)
    seen = FirstSeen("natural key")
    assert _check(seen, ["a", "b", "a"], 1).reasons.tolist() == [
        None,
        None,
        "duplicate natural key 'a' (first seen at a.shp row 1)",
    ]
    assert _check(seen, ["c", "b"], 4).reasons.tolist() == [
        None,
        "duplicate natural key 'b' (first seen at a.shp row 2)",
    ]


def test_rows_already_rejected_are_no_first_occurrence() -> None:
    seen = FirstSeen("natural key")
    issues = Issues(3)
    issues.flag(np.array([True, False, False]), "broken")
    seen.check(pd.Series(["k", "k", "k"], dtype="str"), np.arange(1, 4), "a.shp", issues)
    assert issues.reasons.tolist() == [
        "broken",
        None,
        "duplicate natural key 'k' (first seen at a.shp row 2)",
    ]


def test_a_delivery_of_duplicates_is_checked_in_linear_time() -> None:
    """100,000 rows, half of them repeats of the other half: each repeat is found in one pass
    (looking each one up through the earlier batches made this quadratic: hours)."""
    seen = FirstSeen("natural key")
    keys = [f"k{i}" for i in range(50_000)]
    started = time.perf_counter()
    first = _check(seen, keys[:25_000] * 2, 1)
    second = _check(seen, keys[25_000:] * 2 + keys[:100], 50_001)
    assert (~first.ok).sum() == 25_000 and (~second.ok).sum() == 25_100
    assert second.reasons[-1] == "duplicate natural key 'k99' (first seen at a.shp row 100)"
    assert time.perf_counter() - started < 10
