"""What running a scenario gives back: step and scenario outcomes, with the requests made."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.scenarios.loader import Scenario, Step
from simulator.scenarios.matchers import Mismatch


@dataclass(frozen=True)
class Exchange:
    """A request the runner made and what came back, for the failure report."""

    method: str
    url: str
    request: str
    status: int | None
    answer: str
    error: str = ""


@dataclass(frozen=True)
class StepResult:
    """The outcome of one step."""

    step: Step
    ok: bool
    duration_ms: float
    summary: str = ""
    mismatches: tuple[Mismatch, ...] = ()
    error: str = ""
    exchanges: tuple[Exchange, ...] = ()
    expected: Any = None
    actual: Any = None
    title: str = ""


@dataclass(frozen=True)
class ScenarioResult:
    """The outcome of a scenario: its steps, or the setup error that stopped it."""

    scenario: Scenario
    steps: tuple[StepResult, ...]
    duration_ms: float
    error: str = ""

    @property
    def ok(self) -> bool:
        """Passed: set up, and every step passed."""
        return not self.error and all(s.ok for s in self.steps)

    @property
    def failed_step(self) -> StepResult | None:
        """The step that failed, if one did."""
        return next((s for s in self.steps if not s.ok), None)


class StepError(Exception):
    """A step could not be carried out (as opposed to: it ran and its answer did not match)."""

    def __init__(self, message: str, exchanges: tuple[Exchange, ...] = ()) -> None:
        super().__init__(message)
        self.exchanges = exchanges
