"""``python -m bench NAME [ARGS…]``: run the benchmark ``bench/NAME.py`` (its ``main``)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(
        p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "common"
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: python -m bench NAME [ARGS...]   (./dev bench NAME [ARGS...])")
        print("benchmarks: " + ", ".join(names))
        return 0 if argv else 2
    name, rest = argv[0].removesuffix(".py"), argv[1:]
    if name not in names:
        print(f"bench: unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
