"""pygeoapi-config.yml is generated from layers/ and must never be stale."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sdi.errors import ConfigError
from sdi.layers import load_layers
from sdi.publish.cli import publish
from sdi.publish.config import render_config
from sdi.settings import PROJECT_DIR, Settings


def test_committed_config_is_current() -> None:
    """Fails when someone edits layers/ (or the generator) without running `sdi publish`."""
    settings = Settings(_env_file=None)
    expected = render_config(load_layers(settings), settings)
    assert (PROJECT_DIR / "pygeoapi-config.yml").read_text(encoding="utf-8") == expected


def test_check_detects_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    layers = tmp_path / "layers"
    shutil.copytree(PROJECT_DIR / "layers", layers)
    config = tmp_path / "pygeoapi-config.yml"
    shutil.copy(PROJECT_DIR / "pygeoapi-config.yml", config)
    monkeypatch.setenv("SDI_LAYERS_DIR", str(layers))
    monkeypatch.setenv("SDI_PYGEOAPI_CONFIG", str(config))
    from sdi.settings import get_settings

    get_settings.cache_clear()
    try:
        publish(check=True)  # identical copy: current
        lamps = layers / "lamps.yml"
        lamps.write_text(lamps.read_text().replace("title: Street lamps", "title: Lamps"))
        with pytest.raises(ConfigError, match="stale"):
            publish(check=True)
        publish()
        publish(check=True)
        assert "en: Lamps" in config.read_text()  # titles are {vi, en} (sdi.publish.config)
    finally:
        get_settings.cache_clear()
