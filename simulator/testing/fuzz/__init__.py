"""`planfix-sim fuzz`: Hypothesis-driven contract checks of either party of the chat API.

- `--integration-url URL --token T`: Planfix → chat. Posts valid and invalid `newMessage`
  deliveries (`--variants reply,first`), and sequences of them, to an integration's webhook.
- `--planfix-url URL --planfix-token T`: chat → Planfix. Posts valid and invalid requests of the
  five commands to any Planfix-compatible server.

Answers are judged by named checks in two tiers (`checks.py`); every distinct failure of a run is
shrunk and reported with a curl command and a scenario file (`report.py`).
"""

from __future__ import annotations

import random
import tempfile
from io import StringIO

from simulator.testing.fuzz.checks import CHECKS, MUST, SHOULD, Check, parse_checks
from simulator.testing.fuzz.command import add_parser, fuzz_command
from simulator.testing.fuzz.driver import Failure, Options, Result, Target, run
from simulator.testing.fuzz.report import curl_command, print_failures, scenario_document
from simulator.testing.strategies import VARIANTS

__all__ = [
    "CHECKS",
    "MUST",
    "SHOULD",
    "Check",
    "Failure",
    "FuzzFailed",
    "Options",
    "Result",
    "Target",
    "add_parser",
    "curl_command",
    "fuzz_command",
    "run",
    "run_fuzz_webhook",
    "scenario_document",
]


class FuzzFailed(AssertionError):
    """A fuzz run broke a must-check (or any check, strict); the message has the minimal curl."""


def run_fuzz_webhook(
    url: str,
    token: str,
    *,
    examples: int = 50,
    seed: int | None = None,
    checks: str | None = None,
    strict: bool = False,
    variants: tuple[str, ...] = VARIANTS,
    timeout: float = 5.0,
    database: str | None = None,
    out_dir: str | None = None,
) -> Result:
    """Fuzz an integration's webhook; raise FuzzFailed (with each minimal curl) if it broke."""
    options = Options(
        examples=examples,
        seed=random.SystemRandom().randrange(2**32) if seed is None else seed,
        timeout=timeout,
        checks=parse_checks(checks),
        strict=strict,
        variants=variants,
        database=database,
    )
    result = run(Target("webhook", url, token), options)
    if result.exit_code:
        text = StringIO()
        failed = [f for f in result.failures if result.state(f.check) == "failed"]
        shown = Result(result.target, result.options, result.tally, failed)
        print_failures(shown, out_dir or tempfile.gettempdir(), text)
        raise FuzzFailed(f"planfix-sim fuzz (seed {options.seed}):" + text.getvalue())
    return result
