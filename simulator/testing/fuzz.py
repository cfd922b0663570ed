"""`planfix-sim fuzz`: Hypothesis-driven contract checks of either party of the chat API.

- `--integration-url URL --token T`: Planfix → chat. Posts valid and invalid `newMessage`
  deliveries (both variants) to an integration's webhook. Contract: never a 5xx, never silent
  past the timeout; valid → 200 JSON with string chatId and contactId (chatId echoed for a
  reply); wrong or missing token → 401 with an `error`; invalid → 400 with an `error`.
- `--planfix-url URL --planfix-token T`: chat → Planfix. Posts valid and invalid requests of the
  five commands to any Planfix-compatible server; each must get its labelled answer.

On a violation it prints the shrunk minimal request as a curl command and as a scenario file,
plus the seed that reproduces the run, and exits 1.
"""

from __future__ import annotations

import argparse
import random
import re
import shlex
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote_plus

import yaml
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from simulator.clients.http import Answer, post_form
from simulator.clients.planfix import decode_answer
from simulator.testing.strategies import Case, Pairs, command_cases, webhook_cases


@dataclass(frozen=True)
class Target:
    """What is fuzzed: an integration's webhook or a Planfix endpoint."""

    kind: str  # "webhook" | "planfix"
    url: str
    token: str
    max_body_bytes: int | None = None


@dataclass(frozen=True)
class Verdict:
    """The check of one exchange: problems break the contract, warnings are worth a look."""

    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass
class Failure:
    """A request that broke the contract, with the answer it got."""

    case: Case
    answer: Answer
    problems: tuple[str, ...]
    setup: tuple[Pairs, ...] = ()


@dataclass
class Tally:
    """What was tried and what came back."""

    requests: int = 0
    examples: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)


class ContractBroken(Exception):
    """Raised inside the Hypothesis test so that it shrinks the failing request."""


def _error_text(answer: Answer) -> str | None:
    body = answer.json_or_none()
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None


def _transport_problem(answer: Answer, timeout: float) -> str | None:
    if answer.status is None:
        if answer.error.startswith("timeout"):
            return f"no answer within the {timeout:g} s timeout"
        return f"no answer: {answer.error}"
    if answer.status >= 500:
        return f"server error {answer.status}: {answer.text[:200]!r}"
    return None


def check_webhook_answer(case: Case, answer: Answer, timeout: float) -> Verdict:
    """Check an integration's answer to one Planfix → chat request against the contract."""
    broken = _transport_problem(answer, timeout)
    if broken:
        return Verdict((broken,))
    problems: list[str] = []
    warnings: list[str] = []
    if answer.status not in case.statuses:
        problems.append(f"expected {_statuses(case)} ({case.label}), got {answer.status}")
        return Verdict(tuple(problems))
    body = answer.json_or_none()
    if answer.status == 200:
        if not isinstance(body, dict):
            return Verdict((f"200 body is not a JSON object: {answer.text[:200]!r}",))
        for key in ("chatId", "contactId"):
            if not isinstance(body.get(key), str):
                problems.append(f"200 body lacks a string {key}: {answer.text[:200]!r}")
        sent = case.get("chatId")
        if sent is not None and isinstance(body.get("chatId"), str) and body["chatId"] != sent:
            problems.append(f"chatId not echoed: sent {sent!r}, got {body['chatId']!r}")
    else:
        error = _error_text(answer)
        if error is None:
            problems.append(f"{answer.status} body lacks an 'error' string: {answer.text[:200]!r}")
        elif case.error and error != case.error:
            warnings.append(
                f"{answer.status} error text {error!r} (the contract says {case.error!r})"
            )
    return Verdict(tuple(problems), tuple(warnings))


def check_planfix_answer(case: Case, answer: Answer, timeout: float) -> Verdict:
    """Check a Planfix server's answer to one chat → Planfix request against its label."""
    broken = _transport_problem(answer, timeout)
    if broken:
        return Verdict((broken,))
    # The server's strict setting is unknown from outside: either mode's answer is acceptable.
    accepted = set(case.statuses) | set(case.strict_statuses)
    if answer.status not in accepted:
        wanted = " or ".join(str(s) for s in sorted(accepted))
        return Verdict((f"expected {wanted} ({case.label}), got {answer.status}",))
    if answer.status in (400, 401):
        error = _error_text(answer)
        if error is None:
            return Verdict(
                (f"{answer.status} body lacks an 'error' string: {answer.text[:200]!r}",)
            )
        if answer.status == 401 and error != "Invalid token":
            return Verdict((f"401 error {error!r}, expected 'Invalid token'",))
    if answer.status == 200 and case.cmd in ("getTask", "getContact"):
        decoded = decode_answer(case.cmd, case.form, answer)
        if decoded.number is None:
            return Verdict((f"{case.cmd} answered 200 without data.number: {answer.text[:200]!r}",))
    return Verdict()


def _statuses(case: Case) -> str:
    return " or ".join(str(s) for s in case.statuses)


def curl_command(url: str, form: Sequence[tuple[str, str]], timeout: float) -> str:
    """A curl command that sends `form` exactly as the fuzzer did."""
    parts = ["curl", "-sS", "-i", "--max-time", f"{timeout:g}", "-X", "POST", url]
    parts += ["-H", "Content-Type: application/x-www-form-urlencoded"]
    for key, value in form:
        # curl encodes the value; the name must arrive encoded already.
        parts += ["--data-urlencode", f"{quote_plus(key, safe='[]')}={value}"]
    return " ".join(shlex.quote(p) for p in parts)


_JINJA = re.compile(r"\{[{%#]")


def _literal(value: str) -> str:
    # Scenario strings are Jinja2 templates: keep generated text literal.
    return "{% raw %}" + value + "{% endraw %}" if _JINJA.search(value) else value


def _expect(target: Target, case: Case) -> dict[str, Any]:
    statuses = sorted(set(case.statuses) | set(case.strict_statuses))
    status: Any = statuses[0] if len(statuses) == 1 else {"$one_of": statuses}
    expect: dict[str, Any] = {"status": status}
    if case.valid and target.kind == "webhook":
        chat = case.get("chatId")
        expect["body"] = {
            "chatId": _literal(chat) if chat is not None else {"$type": "string"},
            "contactId": {"$type": "string"},
        }
    elif not case.valid and statuses != [200]:
        expect["body"] = {"error": {"$type": "string"}}
    return expect


def _http_step(name: str, url: str, form: Pairs, timeout: float) -> dict[str, Any]:
    return {
        "name": name,
        "http": {
            "method": "POST",
            "url": url,
            "form": [[k, _literal(v)] for k, v in form],
            "timeout": timeout,
        },
    }


def scenario_document(target: Target, failure: Failure, seed: int, timeout: float) -> str:
    """The failing request as a scenario file (`planfix-sim run FILE` replays it)."""
    steps: list[dict[str, Any]] = [
        {**_http_step(f"setup {i + 1}", target.url, form, timeout), "expect": {"status": 200}}
        for i, form in enumerate(failure.setup)
    ]
    step = _http_step(failure.case.label, target.url, failure.case.form, timeout)
    step["expect"] = _expect(target, failure.case)
    steps.append(step)
    doc = {
        "name": f"fuzz: {failure.case.label} (seed {seed})",
        "description": "Minimal request found by `planfix-sim fuzz`: "
        + "; ".join(failure.problems),
        "steps": steps,
    }
    text: str = yaml.safe_dump(
        doc, allow_unicode=True, sort_keys=False, width=100, default_flow_style=None
    )
    return text


def _kind(label: str) -> str:
    return re.sub(r"'.*'|\d+", "…", label)


def _send(target: Target, form: Pairs, timeout: float, tally: Tally) -> Answer:
    tally.requests += 1
    return post_form(target.url, form, timeout=timeout)


def run(
    target: Target,
    *,
    examples: int,
    seed: int,
    timeout: float,
    out: TextIO,
) -> tuple[Failure | None, Tally]:
    """Fuzz `target`; return the minimal failure (or None) and what was tried."""
    tally = Tally()
    found: list[Failure] = []
    every = max(1, examples // 10)
    if target.kind == "webhook":
        strategy: st.SearchStrategy[Case] = webhook_cases(target.token)
    else:
        strategy = command_cases(target.token, target.max_body_bytes)

    def probe(case: Case) -> None:
        tally.examples += 1
        if tally.examples % every == 0:
            phase = "shrinking" if found else "tried"
            print(f"  … {phase} {tally.examples} examples, {tally.requests} requests", file=out)
            out.flush()
        for form in case.setup:
            answer = _send(target, form, timeout, tally)
            if answer.status != 200:
                problem = f"setup newMessage answered {answer.status or answer.error}"
                found.append(Failure(Case("setup", form), answer, (problem,)))
                raise ContractBroken(problem)
        answer = _send(target, case.form, timeout, tally)
        check = check_webhook_answer if target.kind == "webhook" else check_planfix_answer
        verdict = check(case, answer, timeout)
        tally.labels[_kind(case.label)] += 1
        tally.statuses[str(answer.status or answer.error.split(":")[0])] += 1
        tally.warnings.update(verdict.warnings)
        if verdict.problems:
            found.append(Failure(case, answer, verdict.problems, case.setup))
            raise ContractBroken("; ".join(verdict.problems))

    test = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
        verbosity=Verbosity.quiet,
        print_blob=False,
    )(hypothesis_seed(seed)(given(strategy)(probe)))
    try:
        test()
    except Exception:
        # ContractBroken (or Hypothesis's flaky-replay error around it) after probe recorded
        # the failure; anything else is a bug of the fuzzer itself.
        if not found:
            raise
    # Hypothesis replays the shrunk example last, so the last failure recorded is the minimal one.
    return (found[-1] if found else None), tally


def _summary(tally: Tally, out: TextIO) -> None:
    print(f"{tally.examples} examples (shrinking included), {tally.requests} requests", file=out)
    for label, count in sorted(tally.labels.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count:5d}  {label}", file=out)
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(tally.statuses.items()))
    print(f"  answers: {shown}", file=out)
    for warning, count in tally.warnings.most_common(5):
        print(f"  warning ({count} times): {warning}", file=out)


def fuzz_command(args: argparse.Namespace) -> int:
    """`planfix-sim fuzz`: exit 0 when the contract held, 1 with a reproduction when not."""
    out: TextIO = sys.stdout
    if bool(args.integration_url) == bool(args.planfix_url):
        print("planfix-sim fuzz: give --integration-url or --planfix-url (one)", file=sys.stderr)
        return 2
    if args.integration_url:
        if not args.token:
            print("planfix-sim fuzz: --integration-url needs --token", file=sys.stderr)
            return 2
        target = Target("webhook", args.integration_url, args.token)
    else:
        if not args.planfix_token:
            print("planfix-sim fuzz: --planfix-url needs --planfix-token", file=sys.stderr)
            return 2
        target = Target("planfix", args.planfix_url, args.planfix_token, args.max_body_bytes)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    direction = "Planfix → chat" if target.kind == "webhook" else "chat → Planfix"
    print(f"fuzzing {target.url} ({direction}): {args.examples} examples, seed {seed}", file=out)
    failure, tally = run(target, examples=args.examples, seed=seed, timeout=args.timeout, out=out)
    _summary(tally, out)
    if failure is None:
        print("OK: the contract held", file=out)
        return 0
    print("\nFAILED: " + "; ".join(failure.problems), file=out)
    print(f"minimal request ({failure.case.label}):", file=out)
    for form in failure.setup:
        print("  # first, so the chat or contact exists:", file=out)
        print("  " + curl_command(target.url, form, args.timeout), file=out)
    print("  " + curl_command(target.url, failure.case.form, args.timeout), file=out)
    got = failure.answer
    print(f"answer: {got.status or got.error} {got.text[:300]!r}", file=out)
    document = scenario_document(target, failure, seed, args.timeout)
    path = Path(args.out) / f"planfix-fuzz-{seed}.yaml"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(document, encoding="utf-8")
        print(f"scenario file: {path} (replay: planfix-sim run {path})", file=out)
    except OSError as exc:
        print(f"scenario file not written ({exc.strerror}):\n{document}", file=out)
    print(f"reproduce: {_reproduce(args, seed)}", file=out)
    return 1


def _reproduce(args: argparse.Namespace, seed: int) -> str:
    parts = ["planfix-sim", "fuzz"]
    for flag in ("integration_url", "token", "planfix_url", "planfix_token", "max_body_bytes"):
        value = getattr(args, flag)
        if value is not None:
            parts += ["--" + flag.replace("_", "-"), str(value)]
    parts += [
        "--examples",
        str(args.examples),
        "--seed",
        str(seed),
        "--timeout",
        f"{args.timeout:g}",
    ]
    return " ".join(shlex.quote(p) for p in parts)


def add_parser(sub: Any) -> None:
    """Register `fuzz` on the CLI's subparsers."""
    p = sub.add_parser("fuzz", help="fuzz an integration's webhook or a Planfix endpoint")
    p.add_argument("--integration-url", help="the integration's webhook (Planfix → chat)")
    p.add_argument("--token", help="the integration's token (sent as `token`)")
    p.add_argument("--planfix-url", help="a Planfix-compatible /webchat/api (chat → Planfix)")
    p.add_argument("--planfix-token", help="a valid planfix_token for that server")
    p.add_argument("--examples", type=int, default=100, help="requests to generate (100)")
    p.add_argument("--seed", type=int, help="seed of a run to reproduce")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request (5)")
    p.add_argument(
        "--max-body-bytes",
        type=int,
        help="the server's body limit: adds over-size requests that must get 413",
    )
    p.add_argument("--out", default=".", help="where to write the scenario file of a failure")
    p.set_defaults(func=fuzz_command)
