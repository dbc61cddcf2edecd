"""What a run reports (kept free of heavy imports: the CLI and skipped runs use it)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MergeCounts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    retired: int = 0
    # communes whose features the load added, changed or retired (None: not known)
    communes: frozenset[str] | None = None


@dataclass
class RunResult:
    job: str
    run_id: int | None
    status: str
    rows_read: int = 0
    rejected: int = 0
    repaired: int = 0
    counts: MergeCounts = field(default_factory=MergeCounts)
    message: str = ""
    encoding_report: str | None = None

    @property
    def changes(self) -> int:
        return self.counts.added + self.counts.updated + self.counts.retired
