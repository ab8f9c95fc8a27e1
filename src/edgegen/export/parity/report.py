"""Parity's report: one ``CheckResult`` per provider × variant × check, and the
``ParityReport`` of a whole ``verify`` run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgegen.core.report import Report
from edgegen.export.parity.metrics import ErrorStats


@dataclass
class CheckResult:
    """One row of the report: a provider × variant × check with its numbers."""

    provider: str
    variant: str
    check: str  # golden | pytorch@B | labels | determinism | placement
    status: str  # pass | fail | skip
    message: str = ""
    limit: str = ""  # the bound the check was held to, in words
    stats: ErrorStats | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """``provider/variant``, or ``bundle`` for a check of the whole bundle."""
        return f"{self.provider}/{self.variant}" if self.provider else self.variant

    @property
    def name(self) -> str:
        return f"{self.target}/{self.check}"


@dataclass
class ParityReport(Report):
    bundle: Path
    tolerance_rule: str
    relative_error: str
    providers: list[str]
    variants: list[str]
    tolerances: dict[str, dict[str, float]]  # per variant, as applied (overrides included)
    reference: dict[str, Any]  # where the PyTorch reference came from, or why it is skipped
    environment: dict[str, Any]
    checks: list[CheckResult]
    sessions: list[dict[str, Any]]  # provider truth per (provider, variant)
    signature: dict[str, Any] = field(default_factory=dict)  # verified / unsigned / not checked
    strict: bool = False  # skipped checks count as failures
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and not self.failures

    @property
    def failures(self) -> list[CheckResult]:
        """Failed checks, and under ``strict`` the skipped ones too."""
        bad = ("fail", "skip") if self.strict else ("fail",)
        return [c for c in self.checks if c.status in bad]

