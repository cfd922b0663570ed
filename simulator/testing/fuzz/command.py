"""`planfix-sim fuzz`: the command line, progress and exit code."""

from __future__ import annotations

import argparse
import random
import shlex
import sys
from typing import Any, TextIO

from simulator.testing.fuzz.checks import checks_help, parse_checks
from simulator.testing.fuzz.driver import Options, Result, Tally, Target, run
from simulator.testing.fuzz.report import junit_xml, print_failures, summary_table
from simulator.testing.strategies import VARIANTS

DEFAULT_DATABASE = ".hypothesis/planfix-fuzz"


def parse_variants(text: str) -> tuple[str, ...]:
    """`--variants reply,first` → the variants; ValueError names unknown ones."""
    names = tuple(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise ValueError(f"unknown variant {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    return names


class Progress:
    """A redrawn line on a terminal; a plain line every tenth of the run otherwise."""

    def __init__(self, out: TextIO, examples: int) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every = max(1, examples // 10)
        self.examples = examples

    def __call__(self, tally: Tally, failures: int) -> None:
        """Show the examples tried and failures found so far."""
        text = f"{tally.examples} examples, {tally.requests} requests, {failures} failures"
        if self.tty:
            done = min(1.0, tally.examples / self.examples)
            bar = "#" * int(done * 30)
            self.out.write(f"\r  [{bar:<30}] {text}")
            self.out.flush()
        elif tally.examples % self.every == 0:
            print(f"  … {text}", file=self.out, flush=True)

    def done(self) -> None:
        """End the redrawn line."""
        if self.tty:
            self.out.write("\n")


def _options(args: argparse.Namespace, seed: int) -> Options:
    return Options(
        examples=args.examples,
        seed=seed,
        timeout=args.timeout,
        checks=parse_checks(args.checks),
        strict=args.strict,
        variants=parse_variants(args.variants),
        stateful=not args.no_stateful,
        database=None if args.database in ("", "none") else args.database,
        # --seed replays a run exactly: stored failures would change what it tries.
        reuse=args.seed is None,
    )


def fuzz_command(args: argparse.Namespace) -> int:
    """`planfix-sim fuzz`: exit 0 when every must-check held, 1 with reproductions when not."""
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
    try:
        options = _options(args, seed)
    except ValueError as exc:
        print(f"planfix-sim fuzz: {exc}", file=sys.stderr)
        return 2
    direction = "Planfix → chat" if target.kind == "webhook" else "chat → Planfix"
    print(f"fuzzing {target.url} ({direction}): {options.examples} examples, seed {seed}", file=out)
    print(
        f"  checks: {', '.join(options.checks)}" + (" (strict)" if options.strict else ""), file=out
    )
    progress = Progress(out, options.examples)
    result = run(target, options, progress)
    progress.done()
    return report(result, args, out)


def report(result: Result, args: argparse.Namespace, out: TextIO) -> int:
    """Print the tally, the checks table and every failure; write JUnit; return the exit code."""
    tally = result.tally
    print(f"{tally.examples} examples (shrinking included), {tally.requests} requests", file=out)
    for label, count in sorted(tally.labels.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count:5d}  {label}", file=out)
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(tally.statuses.items()))
    print(f"  answers: {shown}", file=out)
    print_failures(result, args.out, out)
    print("", file=out)
    for line in summary_table(result):
        print(line, file=out)
    if args.junit:
        junit_xml(result).write(args.junit, encoding="utf-8", xml_declaration=True)
    failed = sum(1 for f in result.failures if result.state(f.check) == "failed")
    warned = len(result.failures) - failed
    if result.exit_code == 0:
        print(f"OK: the contract held ({warned} warnings)", file=out)
    else:
        print(f"FAILED: {failed} failures, {warned} warnings", file=out)
        print(f"reproduce: {_reproduce(args, result.options.seed)}", file=out)
    return result.exit_code


def _reproduce(args: argparse.Namespace, seed: int) -> str:
    parts = ["planfix-sim", "fuzz"]
    for flag in (
        "integration_url", "token", "planfix_url", "planfix_token", "max_body_bytes", "checks",
        "variants", "database",
    ):  # fmt: skip
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
    parts += ["--strict"] if args.strict else []
    return " ".join(shlex.quote(p) for p in parts)


def add_parser(sub: Any) -> None:
    """Register `fuzz` on the CLI's subparsers."""
    p = sub.add_parser(
        "fuzz",
        help="fuzz an integration's webhook or a Planfix endpoint",
        description="Checks, by tier (must: a failure exits 1; should: a warning, a failure"
        " with --strict): " + checks_help(),
    )
    p.add_argument("--integration-url", help="the integration's webhook (Planfix → chat)")
    p.add_argument("--token", help="the integration's token (sent as `token`)")
    p.add_argument("--planfix-url", help="a Planfix-compatible /webchat/api (chat → Planfix)")
    p.add_argument("--planfix-token", help="a valid planfix_token for that server")
    p.add_argument(
        "--examples", "--max-examples", type=int, default=100, help="examples to generate (100)"
    )
    p.add_argument("--seed", type=int, help="seed of a run to reproduce (printed by every run)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request (5)")
    p.add_argument(
        "--max-body-bytes",
        type=int,
        help="the server's body limit: adds over-size requests that must get 413",
    )
    p.add_argument("--checks", metavar="NAME,…", help="run only these checks (default: all)")
    p.add_argument("--strict", action="store_true", help="should-checks fail the run too")
    p.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        metavar="reply,first",
        help="which newMessage forms Planfix sends to the webhook (default: both)",
    )
    p.add_argument(
        "--no-stateful",
        action="store_true",
        help="single requests only (no first-then-reply, redelivery or burst sequences)",
    )
    p.add_argument(
        "--database",
        default=DEFAULT_DATABASE,
        metavar="DIR",
        help="Hypothesis example database: the failures found are tried first by the next run"
        f" without --seed ({DEFAULT_DATABASE}; 'none' for none)",
    )
    p.add_argument("--junit", metavar="FILE", help="write a JUnit XML report (a case per check)")
    p.add_argument("--out", default=".", help="where to write the scenario files of failures")
    p.set_defaults(func=fuzz_command)
