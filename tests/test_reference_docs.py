"""docs/reference.md is generated from the JSON Schemas, and the prose does not contradict them."""

from __future__ import annotations

import importlib.util
import json
import re

from sdi.settings import PROJECT_DIR


def _generator():
    spec = importlib.util.spec_from_file_location(
        "spec_reference", PROJECT_DIR / "scripts" / "spec_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_page_is_current() -> None:
    page = (PROJECT_DIR / "docs" / "reference.md").read_text(encoding="utf-8")
    assert page == _generator().render(), (
        "docs/reference.md is stale: run `.venv/bin/python scripts/spec_reference.py` and commit"
    )


def test_every_option_of_every_schema_is_on_the_page() -> None:
    page = (PROJECT_DIR / "docs" / "reference.md").read_text(encoding="utf-8")
    schema = json.loads((PROJECT_DIR / "schemas" / "job-spec.schema.json").read_text())
    for name in schema["properties"]["source"]["properties"]:
        assert f"| `source.{name}` |" in page
    for name in schema["properties"]["target"]["properties"]:
        assert f"| `target.{name}` |" in page
    assert "| `fields.<name>.from` |" in page
    assert "| `edr.parameters.<name>.unit` |" in page  # layers: nested mappings too


def test_the_encoding_default_is_one_value_everywhere() -> None:
    """The schema's default is the loader's, and the prose says the same (issue 12)."""
    from sdi.etl.spec import SourceSpec

    schema = json.loads((PROJECT_DIR / "schemas" / "job-spec.schema.json").read_text())
    default = schema["properties"]["source"]["properties"]["encoding"]["default"]
    assert default == SourceSpec(path="x").encoding == "auto"
    formats = (PROJECT_DIR / "docs" / "formats.md").read_text(encoding="utf-8")
    row = next(
        line for line in formats.splitlines() if "the default when the key is absent" in line
    )
    assert row.startswith(f"| `{default}`")
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"encoding: utf-8\s+# utf-8, cp1258, tcvn3 or latin-1", readme)
    assert "docs/reference.md" in readme and "reference.md" in formats


def test_the_check_mode_reports_a_stale_page(tmp_path, monkeypatch) -> None:
    generator = _generator()
    stale = tmp_path / "reference.md"
    stale.write_text("# old\n", encoding="utf-8")
    monkeypatch.setattr(generator, "PAGE", stale)
    monkeypatch.setattr(generator, "ROOT", tmp_path)
    assert generator.main(["--check"]) == 1
    assert generator.main([]) == 0
    assert generator.main(["--check"]) == 0
