"""Write docs/reference.md, the reference of every job-spec, layer and merge-rule option, from
the JSON Schemas in schemas/ (the one source of truth: the README and docs/formats.md link
here instead of restating options).

    .venv/bin/python scripts/spec_reference.py          # rewrite docs/reference.md
    .venv/bin/python scripts/spec_reference.py --check  # exit 1 when it is stale

tests/test_reference_docs.py fails when the page does not match the schemas.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
PAGE = ROOT / "docs" / "reference.md"

# (schema file, heading, where the files live)
DOCUMENTS = (
    ("job-spec.schema.json", "Job specs", "`etl/jobs/<job>.yml`"),
    ("layer.schema.json", "Layers", "`layers/<collection>.yml`"),
    ("merge-rule.schema.json", "Merge rules", "`etl/merge_rules/<schema.table>.yml`"),
)


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(v, ensure_ascii=False)}`" for v in node["enum"])
    if "const" in node:
        return f"`{json.dumps(node['const'], ensure_ascii=False)}`"
    kind = node.get("type")
    if kind is None and ("oneOf" in node or "anyOf" in node):
        return " or ".join(_type(n) for n in node.get("oneOf", node.get("anyOf")))
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        items = node.get("items", {})
        return f"list of {_type(items) if items else 'values'}"
    if kind == "object" and "additionalProperties" in node and not node.get("properties"):
        inner = node["additionalProperties"]
        return "mapping" if inner is True else f"mapping of {_type(inner)}"
    return kind or "any value"


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
        ("minItems", "items ≥"),
        ("maxItems", "items ≤"),
    ):
        if key in node:
            parts.append(f"{label} {node[key]}")
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`")
    return ", ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(node: dict[str, Any], prefix: str, required: set[str]) -> list[str]:
    rows = []
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        default = (
            f"`{json.dumps(child['default'], ensure_ascii=False)}`" if "default" in child else ""
        )
        notes = _constraints(child)
        description = child.get("description", "")
        if notes:
            description = f"{description} ({notes})" if description else notes
        rows.append(
            f"| `{path}` | {_cell(_type(child))} | {'yes' if name in required else ''} | "
            f"{_cell(default)} | {_cell(description)} |"
        )
        rows += _children(child, path)
    return rows


def _children(node: dict[str, Any], path: str) -> list[str]:
    rows = []
    if node.get("properties"):
        rows += _rows(node, f"{path}.", set(node.get("required", [])))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        key = "<name>"
        for option in extra.get("oneOf", [extra]):
            if option.get("properties"):
                rows += _rows(option, f"{path}.{key}.", set(option.get("required", [])))
    for option in node.get("oneOf", []):
        if isinstance(option, dict) and option.get("properties"):
            rows += _rows(option, f"{path}.", set(option.get("required", [])))
    items = node.get("items")
    if isinstance(items, dict) and items.get("properties"):
        rows += _rows(items, f"{path}[].", set(items.get("required", [])))
    return rows


def _rules(schema: dict[str, Any]) -> list[str]:
    """The cross-field rules (if/then/else, dependentRequired) in words."""
    lines = []
    for rule in schema.get("allOf", []):
        condition = rule.get("if", {}).get("properties", {})
        for key, value in condition.items():
            const = json.dumps(value.get("const"), ensure_ascii=False)
            then, other = rule.get("then", {}), rule.get("else", {})
            if then:
                lines.append(f"- when `{key}` is `{const}`: {_rule_text(then)}")
            if other:
                lines.append(f"- otherwise: {_rule_text(other)}")
    for path, node in _walk(schema, ""):
        for key, needs in node.get("dependentRequired", {}).items():
            lines.append(f"- `{path}{key}` needs {', '.join(f'`{path}{n}`' for n in needs)}")
    return lines


def _rule_text(node: dict[str, Any]) -> str:
    parts = []
    if "required" in node:
        parts.append("required: " + ", ".join(f"`{r}`" for r in node["required"]))
    if "not" in node:
        names = [r for alt in node["not"].get("anyOf", []) for r in alt.get("required", [])]
        parts.append("not allowed: " + ", ".join(f"`{n}`" for n in names))
    for key, child in node.get("properties", {}).items():
        for inner, value in child.get("properties", {}).items():
            if "const" in value:
                parts.append(f"`{key}.{inner}` must be `{value['const']}`")
    return "; ".join(parts) or json.dumps(node)


def _walk(node: dict[str, Any], path: str):
    yield path, node
    for name, child in node.get("properties", {}).items():
        if isinstance(child, dict):
            yield from _walk(child, f"{path}{name}.")


def render() -> str:
    out = [
        "# Reference: job specs, layers and merge rules",
        "",
        "<!-- Generated from schemas/*.schema.json by scripts/spec_reference.py; do not edit.",
        "     Edit the schema's description/default and rerun the script (a test checks). -->",
        "",
        "Every option of the YAML files an analyst writes, generated from the JSON Schemas the "
        "files are checked against (a typo fails with the file, line and key). `<name>` stands "
        "for a key you choose (a target column, a parameter). Worked examples: the README "
        "(*For an analyst: adding a source*) and `docs/formats.md` (the `source:` of each format).",
        "",
    ]
    for filename, heading, where in DOCUMENTS:
        schema = json.loads((SCHEMAS / filename).read_text(encoding="utf-8"))
        out += [
            f"## {heading}",
            "",
            f"{where}, checked against `schemas/{filename}`. {schema.get('description', '')}",
            "",
            "| option | type | required | default | meaning |",
            "|---|---|---|---|---|",
            *_rows(schema, "", set(schema.get("required", []))),
            "",
        ]
        rules = _rules(schema)
        if rules:
            out += ["Rules across options:", "", *rules, ""]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the page is stale")
    args = parser.parse_args(argv)
    text = render()
    current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else None
    if args.check:
        if current != text:
            print(
                f"{PAGE.relative_to(ROOT)} is stale: run scripts/spec_reference.py", file=sys.stderr
            )
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
