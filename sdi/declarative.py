"""Load the declarative YAML files (ETL job specs, layer definitions) and check them.

Each file is checked against a JSON Schema in ``schemas/``; an error names the file, the
line and the key, so an analyst can fix a spec without reading Python.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sdi.errors import ConfigError
from sdi.settings import get_settings

if TYPE_CHECKING:
    import jsonschema  # imported when a file is checked: `sdi` commands start without it

Location = tuple[str | int, ...]


def _construct(node: yaml.Node, lines: dict[Location, int], at: Location) -> Any:
    """Turn a composed YAML node into Python data, remembering each node's line."""
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            lines[(*at, key)] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, lines, (*at, key))
            lines[(*at, key)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, lines, (*at, i)) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def load_yaml(path: Path) -> tuple[Any, dict[Location, int]]:
    """Parse a YAML file; returns the data and a map from key path to line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    lines: dict[Location, int] = {}
    data = _construct(node, lines, ()) if node is not None else None
    return data, lines


@lru_cache
def json_schema(name: str) -> dict[str, Any]:
    path = get_settings().home / "schemas" / name
    return json.loads(path.read_text(encoding="utf-8"))


def _allowed_keys(error: jsonschema.ValidationError) -> Mapping[str, Any]:
    """The keys the failing (sub)schema allows: its ``properties``."""
    schema = error.schema
    return schema.get("properties", {}) if isinstance(schema, Mapping) else {}


def _unknown_keys(error: jsonschema.ValidationError) -> list[str]:
    known = _allowed_keys(error)
    instance = error.instance
    return [k for k in instance if k not in known] if isinstance(instance, Mapping) else []


def _location(error: jsonschema.ValidationError) -> Location:
    """Where to point: the unknown key itself for a misspelt key, else the failing value."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and _unknown_keys(error):
        return (*path, _unknown_keys(error)[0])
    return path


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(part) for part in _location(error)) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = ", ".join(_allowed_keys(error))
        return f"{key}: unknown key (check the spelling; allowed here: {allowed})"
    if error.validator == "enum" and isinstance(error.validator_value, list):
        allowed = ", ".join(repr(v) for v in error.validator_value)
        return f"{key}: {error.instance!r} is not one of {allowed}"
    return f"{key}: {error.message}"


def load_checked(path: Path, schema_name: str) -> dict[str, Any]:
    """Load a YAML file and validate it against ``schemas/<schema_name>``.

    Raises ConfigError listing every problem as ``file:line: key: what is wrong``.
    """
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: expected a mapping of keys to values")
    import jsonschema

    validator = jsonschema.Draft202012Validator(json_schema(schema_name))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        messages = []
        for error in errors:
            where = _location(error)
            while where not in lines and where:
                where = where[:-1]
            messages.append(f"{path}:{lines.get(where, 1)}: {_describe(error)}")
        raise ConfigError("\n".join(messages))
    return data
