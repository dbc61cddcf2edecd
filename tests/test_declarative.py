"""Job specs and layer definitions: errors name the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdi.errors import ConfigError
from sdi.etl.codes import code_list
from sdi.etl.hooks import registered
from sdi.etl.spec import discover_jobs, load_job
from sdi.layers import load_layer, load_layers
from sdi.planning.model import LAYER_INPUTS


def test_every_shipped_job_spec_is_valid() -> None:
    jobs = discover_jobs()
    assert len(jobs) >= 13
    for path in jobs.values():
        load_job(path)


def test_every_shipped_layer_is_valid_and_publishes_no_personal_field() -> None:
    for layer in load_layers():
        if not layer.publish_personal:  # an internal register may say it publishes them
            assert not set(layer.published_properties) & set(layer.personal), layer.id
        else:
            assert layer.access == "internal", f"{layer.id} publishes personal data publicly"


def test_misspelt_key_names_file_line_and_key(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yml"
    spec.write_text(
        "title: Parcels\n"
        "source:\n"
        "  path: land/x.shp\n"
        "  srid: 5899\n"
        "  encodng: tcvn3\n"
        "target: {table: land.parcels}\n"
        "natural_key: MAXA\n"
        "fields: {commune_code: MAXA}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_job(spec)
    assert f"{spec}:5:" in str(error.value)
    assert "encodng" in str(error.value)


def test_wrong_value_names_the_allowed_ones(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yml"
    spec.write_text(
        "title: Parcels\nsource: {path: x.shp, srid: 5899, encoding: vni-win}\n"
        "target: {table: land.parcels}\nnatural_key: MAXA\nfields: {a: b}\n"
    )
    with pytest.raises(ConfigError, match=r"bad.yml:2: source.encoding: 'vni-win' is not one of"):
        load_job(spec)


def test_source_crs_must_be_stated(tmp_path: Path) -> None:
    spec = tmp_path / "nocrs.yml"
    spec.write_text(
        "title: P\nsource: {path: x.shp}\ntarget: {table: land.parcels}\n"
        "natural_key: MAXA\nfields: {a: b}\n"
    )
    with pytest.raises(ConfigError, match=r"source\.srid is required"):
        load_job(spec)


def test_personal_field_in_properties_is_refused(tmp_path: Path) -> None:
    layer = tmp_path / "leaky.yml"
    layer.write_text(
        "title: Parcels\ndescription: d\nsource: {table: land.parcels_current}\n"
        "properties: [natural_key, owner_name]\npersonal: [owner_name]\n"
    )
    with pytest.raises(ConfigError, match="owner_name are marked personal"):
        load_layer(layer)


def test_the_layer_model_carries_every_option_of_the_file() -> None:
    """Writes and EDR are fields of the Layer (nothing re-reads the layer files)."""
    layers = {layer.id: layer for layer in load_layers()}
    assert layers["incidents"].editable
    assert layers["incidents"].editable_provider == "sdi.api.incidents.IncidentProvider"
    assert not layers["parcels"].editable and layers["parcels"].edr is None
    edr = layers["gauges"].edr
    assert edr is not None and edr.readings == "hazard.gauge_readings"
    assert edr.parameters["water_level_m"].unit == "m" and edr.position_tolerance_m == 100


def test_land_use_groups_are_checked_against_the_codes(tmp_path: Path) -> None:
    land_use = code_list("land_use")
    grouped = land_use.group_of()
    assert set(grouped) == set(land_use.current)  # every code in a group, once
    assert land_use.ungrouped in land_use.groups
    (tmp_path / "bad.yml").write_text(
        "current: {ODT: urban}\ngroups:\n  residential: [ODT]\n  business: [XYZ]\n"
    )
    with pytest.raises(ConfigError, match=r"bad.yml:4: groups.business: XYZ not among"):
        code_list("bad", tmp_path)


def test_after_load_hooks_register_themselves_warnings_first() -> None:
    hooks = registered()
    assert hooks[0].name == "flood warnings"
    assert {t for h in hooks[1:] for t in h.layers} == set(LAYER_INPUTS)
