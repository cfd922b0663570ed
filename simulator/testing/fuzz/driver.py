"""The Hypothesis driver: every distinct failure of a run, each shrunk to its minimal request.

Each failure is keyed by (check, kind of request) and raised as its own exception class, so
Hypothesis (with `report_multiple_bugs`) keeps generating after the first, shrinks each one
separately and replays each minimal example last, when it is recorded here.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import HypothesisException

from simulator.clients.http import Answer, post_form
from simulator.testing.cases import Case, Pairs
from simulator.testing.fuzz.checks import BY_NAME, MUST, NAMES, judge_planfix, judge_webhook
from simulator.testing.fuzz.stateful import exchanges, stateful_cases
from simulator.testing.strategies import VARIANTS, command_cases, webhook_cases


@dataclass(frozen=True)
class Target:
    """What is fuzzed: an integration's webhook or a Planfix endpoint."""

    kind: str  # "webhook" | "planfix"
    url: str
    token: str
    max_body_bytes: int | None = None


@dataclass(frozen=True)
class Options:
    """How a run goes: its size, seed, checks, variants and example database."""

    examples: int = 100
    seed: int = 0
    timeout: float = 5.0
    checks: tuple[str, ...] = NAMES
    strict: bool = False
    variants: tuple[str, ...] = VARIANTS
    stateful: bool = True
    database: str | None = None  # a directory; None: no database
    # Try the failures stored in the database first (off when a seed is replayed exactly).
    reuse: bool = True


@dataclass
class Failure:
    """A check that failed: the case (setup included), the request that failed and its answer."""

    check: str
    case: Case
    form: Pairs
    answer: Answer
    problem: str
    kind: str  # what failures are grouped by, with the check (see `failure_kind`)

    @property
    def tier(self) -> str:
        """The failed check's tier."""
        return BY_NAME[self.check].tier


@dataclass
class Tally:
    """What was tried and what came back (shrinking included)."""

    examples: int = 0
    requests: int = 0
    checks: dict[str, Counter[str]] = field(default_factory=dict)
    labels: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)


@dataclass
class Result:
    """A run's outcome: every distinct failure, minimal, and the tally."""

    target: Target
    options: Options
    tally: Tally
    failures: list[Failure]

    def state(self, check: str) -> str:
        """'passed', 'failed' or 'warned' (a should-check that failed without --strict)."""
        if not any(f.check == check for f in self.failures):
            return "passed"
        if BY_NAME[check].tier == MUST or self.options.strict:
            return "failed"
        return "warned"

    @property
    def exit_code(self) -> int:
        """1 if a must-check failed (or any check, with --strict), else 0."""
        return 1 if any(self.state(c) == "failed" for c in self.options.checks) else 0


class ContractBroken(Exception):
    """Raised inside the Hypothesis test so that it shrinks the failing request."""


_BROKEN: dict[tuple[str, str], type[ContractBroken]] = {}


def _broken(key: tuple[str, str]) -> type[ContractBroken]:
    # Hypothesis tells failures apart by exception type and line: one class per key.
    if key not in _BROKEN:
        _BROKEN[key] = type(f"ContractBroken[{key[0]}: {key[1]}]", (ContractBroken,), {})
    return _BROKEN[key]


def case_kind(label: str) -> str:
    """A label without its generated values (quoted text, counts)."""
    return re.sub(r"'.*'|\d+", "N", label)


TRANSPORT = ("no_server_error", "answers_in_time")


def failure_kind(check: str, case: Case, answer: Answer, problem: str) -> str:
    """What a failure of `check` is deduplicated by, with the check: the kind of request, and
    what went wrong, so one bug is reported once however many request labels it shows under.

    A 5xx or a hang belongs to the server rather than to the form of the request: those group by
    the class of request (valid, wrong token, invalid). A valid request refused groups by the
    status it got, one accepted wrongly by what was wrong ("chatId not echoed"). A refusal gone
    wrong groups by what was sent (a variant or command) and the status it got, so a server that
    skips one field check is not reported once per field.
    """
    if check in TRANSPORT:
        if case.valid:
            return "valid requests"
        return "token refusals" if 401 in case.statuses else "invalid requests"
    if check == "valid_accepted":
        if answer.status != 200:
            return f"valid requests answered {answer.status}"
        return problem.split(":")[0]
    return f"{re.split(r'[ :]', case.label)[0]} requests answered {answer.status}"


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _strategy(target: Target, options: Options) -> st.SearchStrategy[Case]:
    if target.kind == "planfix":
        return command_cases(target.token, target.max_body_bytes)
    single = webhook_cases(target.token, options.variants)
    if not options.stateful:
        return single
    return st.one_of(single, single, single, stateful_cases(target.token, options.variants))


Progress = Callable[[Tally, int], None]


# Rounds of search: each ignores the failures already found, so it looks for the next one.
MAX_ROUNDS = 8


def run(target: Target, options: Options, progress: Progress | None = None) -> Result:
    """Fuzz `target`; every distinct failure comes back shrunk, grouped by check and kind.

    Hypothesis ends its search soon after the last new failure, so the search runs in rounds:
    each round (seed + round) skips the failures already found and shrinks the new ones; the
    run ends with a round that finds nothing new (a full `examples` search) or after MAX_ROUNDS.
    """
    tally = Tally(checks={name: Counter() for name in options.checks})
    found: dict[tuple[str, str], Failure] = {}
    judge = judge_webhook if target.kind == "webhook" else judge_planfix
    known: set[tuple[str, str]] = set()

    def send(form: Pairs) -> Answer:
        tally.requests += 1
        answer = post_form(target.url, form, timeout=options.timeout)
        tally.statuses[str(answer.status or answer.error.split(":")[0])] += 1
        return answer

    def probe(case: Case) -> None:
        tally.examples += 1
        tally.labels[case_kind(case.label)] += 1
        if progress is not None:
            progress(tally, len(found))
        for checked, form, answer in exchanges(case, send):
            failing: list[tuple[str, str]] = []
            for name, problem in judge(checked, answer, options.timeout):
                if name in tally.checks:
                    tally.checks[name]["failed" if problem else "passed"] += 1
                    if problem:
                        failing.append((name, problem))
            # A must-check's failure matters more than a should-check's on the same answer.
            failing.sort(key=lambda f: BY_NAME[f[0]].tier != MUST)
            for name, problem in failing:
                key = (name, failure_kind(name, case, answer, problem))
                if key not in known:
                    found[key] = Failure(name, case, form, answer, problem, key[1])
                    raise _broken(key)(problem)
            if failing:
                return  # only failures found in an earlier round: on to the next example

    database = DirectoryBasedExampleDatabase(Path(options.database)) if options.database else None
    strategy = _strategy(target, options)
    for round_ in range(MAX_ROUNDS):
        known = set(found)
        # Only the first round replays the database: a later one would drop the examples of
        # the failures it skips (to Hypothesis they no longer fail).
        phases = [Phase.reuse] * (round_ == 0 and options.reuse) + [Phase.generate, Phase.shrink]
        test = settings(
            max_examples=options.examples,
            deadline=None,
            database=database,
            derandomize=False,
            report_multiple_bugs=True,
            suppress_health_check=list(HealthCheck),
            phases=phases,
            verbosity=Verbosity.quiet,
            print_blob=False,
        )(hypothesis_seed(options.seed + round_)(given(strategy)(probe)))
        try:
            test()
        except Exception as exc:
            # ContractBroken (grouped, or wrapped as flaky when a replay answered otherwise)
            # after probe recorded it; anything else is a bug of the fuzzer itself.
            if set(found) == known or any(
                not isinstance(leaf, ContractBroken | HypothesisException) for leaf in _leaves(exc)
            ):
                raise
        if set(found) == known:
            break
    failures = sorted(found.values(), key=lambda f: (f.tier != MUST, NAMES.index(f.check)))
    return Result(target, options, tally, failures)
