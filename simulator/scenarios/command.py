"""`planfix-sim schema` and `planfix-sim run`: the scenario subcommands."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from simulator.errors import ConfigError
from simulator.scenarios.loader import Scenario, load_file, scenario_files
from simulator.scenarios.report import (
    count,
    junit_xml,
    print_result,
    scenario_header,
    step_line,
)
from simulator.scenarios.results import ScenarioResult, StepResult
from simulator.scenarios.runner import Runner, Targets
from simulator.scenarios.schema import schema_text

EXIT_PASSED, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def add_target_options(add: Any) -> None:
    """Target options shared by `run` and the pytest plugin (`add`: addoption or add_argument)."""
    add(
        "--planfix-url",
        help="send the chat-side (send) steps to this /webchat/api instead of the simulator's",
    )
    add(
        "--integration-url",
        default=os.environ.get("PLANFIX_SIM_INTEGRATION_URL") or None,
        help="deliver the Planfix-side steps (reply, first_message) to this integration URL;"
        " scenarios read it as {{ integration_url }} (default: $PLANFIX_SIM_INTEGRATION_URL)",
    )
    add(
        "--integration-token",
        default=os.environ.get("PLANFIX_SIM_INTEGRATION_TOKEN") or None,
        help="the token that integration expects; scenarios read it as {{ integration_token }}"
        " (default: $PLANFIX_SIM_INTEGRATION_TOKEN)",
    )
    add(
        "--simulator-url",
        help="use this running simulator instead of starting one in-process",
    )
    add(
        "--simulator-admin-token",
        default=os.environ.get("PLANFIX_SIM_ADMIN_TOKEN") or None,
        help="admin token of the simulator's control API (default: $PLANFIX_SIM_ADMIN_TOKEN)",
    )
    add(
        "--planfix-token",
        help="planfix_token for --planfix-url when it is not a simulator"
        " (default: $PLANFIX_SIM_PLANFIX_TOKEN)",
    )


def add_subcommands(sub: Any) -> None:
    """Register `schema` and `run` on the CLI's subparsers."""
    p_schema = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    p_schema.set_defaults(func=print_schema)
    p_run = sub.add_parser("run", help="run YAML scenarios")
    p_run.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or folders")
    add_target_options(p_run.add_argument)
    p_run.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    p_run.add_argument(
        "--keep",
        action="store_true",
        help="keep each scenario's integration (default: deleted when the scenario ends)",
    )
    p_run.set_defaults(func=run)


def print_schema(args: argparse.Namespace) -> int:
    """Print the scenario JSON Schema."""
    sys.stdout.write(schema_text())
    return EXIT_PASSED


def load_all(paths: Sequence[str]) -> tuple[list[Scenario], list[ConfigError]]:
    """Every scenario of every file, and every file's errors (each may hold several problems)."""
    scenarios: list[Scenario] = []
    invalid: list[ConfigError] = []
    files = scenario_files(paths)
    for path in files:
        try:
            scenarios.extend(load_file(path))
        except ConfigError as exc:
            invalid.append(exc)
    if not files:
        invalid.append(ConfigError(" ".join(paths), None, "", "no scenario files found"))
    return scenarios, invalid


def run(args: argparse.Namespace) -> int:
    """Check every file, then run every scenario; exit 0 passed, 1 failed, 2 invalid."""
    from simulator.serving.live import LiveServer  # starts Flask only when running

    # The in-process server's access log would bury the step lines.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    scenarios, invalid = load_all(args.paths)
    for problem in (one for error in invalid for one in error.problems):
        print(f"invalid: {problem}", file=sys.stderr)
    if invalid:
        if args.junit:
            junit_xml([], invalid).write(args.junit, encoding="utf-8", xml_declaration=True)
        return EXIT_INVALID
    server: LiveServer | None = None
    simulator_url = args.simulator_url
    if not simulator_url:
        server = LiveServer().start()
        simulator_url = server.url
    targets = Targets(
        simulator_url=simulator_url.rstrip("/"),
        planfix_url=args.planfix_url,
        integration_url=args.integration_url,
        integration_token=args.integration_token,
        planfix_token=args.planfix_token,
        admin_token=args.simulator_admin_token,
    )

    def show(scenario: Scenario, result: StepResult) -> None:
        print(step_line(result), flush=True)

    runner = Runner(targets, on_step=show, keep=args.keep)
    results: list[ScenarioResult] = []
    started = time.perf_counter()
    try:
        for scenario in scenarios:
            print(scenario_header(scenario), flush=True)
            result = runner.run(scenario)
            print_result(result, sys.stdout)
            results.append(result)
    finally:
        seconds = time.perf_counter() - started
        if server is not None:
            server.stop()
    steps = sum(len(r.steps) for r in results)
    failed = [r for r in results if not r.ok]
    print(
        f"\n{len(results) - len(failed)} passed, {len(failed)} failed;"
        f" {count(steps, 'step')} in {seconds:.2f} s"
        f" ({steps / seconds if seconds else 0:.0f} steps/s)"
    )
    for result in failed:
        print(f"FAILED {result.scenario.where} {result.scenario.name}")
    if args.junit:
        junit_xml(results).write(args.junit, encoding="utf-8", xml_declaration=True)
    if server is not None:
        server.check()
    return EXIT_FAILED if failed else EXIT_PASSED
