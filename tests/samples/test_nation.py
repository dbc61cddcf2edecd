"""A nation of sample data (``sdi samples generate --provinces N``, issue 14)."""

from __future__ import annotations

from pathlib import Path

import pyogrio
import pytest

from sdi.samples.nation import PROVINCES, generate_nation, parcels_per_province, province_codes


def test_the_34_provinces_of_the_reference_list_share_the_parcels_by_population() -> None:
    codes = province_codes()
    assert len(codes) == 34 == len(set(codes)) and codes[0] == "22"
    counts = parcels_per_province(34, 1_000_000)
    assert sum(counts.values()) == 1_000_000
    assert max(counts, key=counts.__getitem__) == "79"  # Hồ Chí Minh City
    assert counts["79"] > 20 * counts["12"]  # Lai Châu
    fixed = parcels_per_province(34, 10_000_000, {"22": 50_000})
    assert fixed["22"] == 50_000 and sum(fixed.values()) == 10_000_000
    with pytest.raises(ValueError, match="provinces must be"):
        parcels_per_province(35, 1_000)


def test_a_small_nation_has_one_parcels_file_per_province_and_national_commune_codes(
    tmp_path: Path,
) -> None:
    made = generate_nation(tmp_path, provinces=3, parcels=3_000)
    codes = province_codes()[:3]
    assert made["parcels"] == 3_000
    communes = pyogrio.read_dataframe(tmp_path / "admin/communes_2025.gpkg", read_geometry=False)
    assert set(communes["province_code"]) == set(codes)
    assert communes["commune_code"].is_unique and len(communes) == 3 * 54
    west = {}
    for code in codes:
        path = tmp_path / f"land/parcels_{code}.gpkg"
        parcels = pyogrio.read_dataframe(path, read_geometry=False)
        own = set(communes.loc[communes["province_code"] == code, "commune_code"])
        assert set(parcels["MAXA"]) <= own, code
        west[code] = pyogrio.read_info(path)["total_bounds"][0]
    # each province lies around its own centre (x: metres east in EPSG:5899)
    assert (west["01"] < west["22"]) == (PROVINCES["01"][1] < PROVINCES["22"][1])
    again = generate_nation(tmp_path / "again", provinces=3, parcels=3_000)
    assert again["files"] == made["files"]
