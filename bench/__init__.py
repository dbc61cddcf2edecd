"""Benchmarks: ``python -m bench NAME [ARGS]`` runs ``bench/NAME.py`` (see bench/README.md)."""
