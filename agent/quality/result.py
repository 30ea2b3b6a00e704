"""The result shape every quality check shares."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One check: did it pass, its 0-100 score, what was measured, and what to tell people."""

    name: str
    passed: bool
    score: float
    measured: str
    hint_id: str = ""
    hint_en: str = ""


def grade(value: float, lo: float, hi: float, soft: float) -> float:
    """100 inside [lo, hi]; outside, below 50 and falling linearly to 0 at ``soft`` beyond."""
    if lo <= value <= hi:
        return 100.0
    dist = lo - value if value < lo else value - hi
    return max(0.0, 50.0 * (1 - dist / soft))


def combine(checks: list[Check], weights: dict[str, int]) -> int:
    """Weighted mean of check scores, capped 25 points above the worst check.

    Failed checks score below 50, so one failure always shows in the total: a blurred photo
    cannot pass on good lighting alone.
    """
    total = sum(weights[c.name] for c in checks)
    weighted = sum(weights[c.name] * c.score for c in checks) / total
    return int(round(min(weighted, min(c.score for c in checks) + 25)))


class CheckedResult:
    """Methods shared by the face and iris results (``score``, ``passed``, ``checks``,
    ``not_checked`` are fields of each result dataclass)."""

    score: int
    passed: bool
    checks: tuple[Check, ...]
    not_checked: tuple[str, ...]

    def failed(self) -> tuple[Check, ...]:
        """Checks that did not pass."""
        return tuple(c for c in self.checks if not c.passed)

    def hints(self, language: str) -> list[str]:
        """Plain-language advice for each failed check in ``language`` ("id" or "en")."""
        return [c.hint_id if language == "id" else c.hint_en for c in self.failed()]

    def as_dict(self) -> dict[str, object]:
        """JSON form for the station API and the packet manifest (measurements only, no pixels)."""
        return {
            "score": self.score,
            "passed": self.passed,
            "checks": [
                {"name": c.name, "passed": c.passed, "score": round(c.score, 1), "measured": c.measured}
                for c in self.checks
            ],
            "not_checked": list(self.not_checked),
        }
