"""The package imports only downward (docs/architecture.md): a module never imports from a
layer above its own, nor a private name of another module. Read from the source, no import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sdi"

# Lowest first. A module may import its own layer and those below; a package's command-line
# module is in its package's layer, and only the ``sdi`` command itself sits on top of all.
LAYERS: dict[str, int] = {
    "sdi.settings": 0,
    "sdi.errors": 0,
    "sdi.sql": 0,
    "sdi.declarative": 1,
    "sdi.db": 2,
    "sdi.layers": 3,
    "sdi.codes": 3,
    "sdi.runs": 3,
    "sdi.cli_support": 3,
    "sdi.etl": 4,
    "sdi.keys": 4,
    "sdi.hazard": 5,
    "sdi.planning": 6,
    "sdi.publish": 7,
    "sdi.jobs": 7,  # the job system: queue and job records; runs ETL and configured processes
    "sdi.api": 8,
    "sdi.dashboard": 8,
    "sdi.samples": 9,  # the sample generator: a tool beside the product
}
TOP = 100


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def _is_cli(module: str) -> bool:
    return module in {"sdi", "sdi.__main__", "sdi.cli", "sdi.serve"}


def _layer(module: str) -> int:
    if _is_cli(module):
        return TOP
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    raise AssertionError(f"{module}: not in any layer; add its package to LAYERS")


def _imports(path: Path, package: str = "sdi") -> list[tuple[int, str, list[str]]]:
    """(line, imported module, imported names) of every sdi import, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
            names = [a.name for a in node.names]
            if node.module == package:  # `from sdi import sql`: the modules themselves
                found += [(node.lineno, f"{package}.{name}", []) for name in names]
            else:
                found.append((node.lineno, node.module, names))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.startswith(package)]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_go_downward(path: Path) -> None:
    module = _module_name(path)
    upward = [
        f"{path.name}:{line}: {module} (layer {_layer(module)}) imports {target} "
        f"(layer {_layer(target)})"
        for line, target, _ in _imports(path)
        if _layer(target) > _layer(module)
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_private_names_of_other_modules(path: Path) -> None:
    module = _module_name(path)
    private = [
        f"{path.name}:{line}: {module} imports {target}.{name}"
        for line, target, names in _imports(path)
        for name in names
        if name.startswith("_") and target != module
    ]
    assert not private, "\n".join(private)


def test_hazard_does_not_know_planning() -> None:
    """Planning derives layers from hazard zones; hazard never depends on planning."""
    offenders = [
        f"{p.relative_to(PACKAGE.parent)}:{line}"
        for p in (PACKAGE / "hazard").rglob("*.py")
        for line, target, _ in _imports(p)
        if target.startswith("sdi.planning")
    ]
    assert not offenders


TESTS = Path(__file__).resolve().parent


def test_no_test_module_imports_another() -> None:
    """Shared helpers live in tests/support (and tests/clients), fixtures in conftest.py."""
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line}: {target}"
        for path in sorted(TESTS.rglob("test_*.py"))
        for line, target, _ in _imports(path, package="tests")
        if not target.startswith(("tests.support", "tests.clients", "tests.conftest"))
    ]
    assert not offenders, "\n".join(offenders)
