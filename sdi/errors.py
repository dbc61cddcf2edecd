"""The product's error hierarchy: each kind is mapped once to an exit code and an HTTP status.

Messages are written for people: what went wrong, where, and how to fix it.
"""

from __future__ import annotations


class SdiError(Exception):
    """Base of every error the product reports to a person instead of a traceback."""

    exit_code = 1
    http_status = 500


class ConfigError(SdiError):
    """A job spec, layer definition or setting is wrong (names file, line and key)."""

    exit_code = 2
    http_status = 500


class SourceError(SdiError):
    """A delivered source file cannot be read or does not match its job spec."""

    exit_code = 3


class RejectThresholdExceeded(SdiError):
    """More rows were rejected than the job allows; nothing was written."""

    exit_code = 4


class JobLockedError(SdiError):
    """Another run of the same job holds its lock."""

    exit_code = 5


class DatabaseUnavailable(SdiError):
    """The warehouse cannot be reached or is not set up."""

    exit_code = 6


class WarehouseRefused(SdiError):
    """The database refused the load (a constraint, a type, a lock timeout); nothing written."""

    exit_code = 8
