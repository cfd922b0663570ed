"""`planfix-sim`: the command line."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import NoReturn

from simulator import __version__
from simulator.config.settings import environment_names
from simulator.planfix import exchange_log
from simulator.serving import production as serving


def serve(args: argparse.Namespace) -> int:
    """Run the simulator until Ctrl-C or SIGTERM (the server: simulator/serving/production.py)."""
    return serving.serve(serving.options_from(args))


def bounded_int(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`, else a one-line error naming the range."""

    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not {what} ({low} to {high})")
        return value

    return parse


def _environment_help() -> str:
    """The `SIMULATOR_*` variables `serve` reads, for its --help."""
    scalars = ", ".join(environment_names())
    return (
        "environment: SIMULATOR_CONFIG (--config), SIMULATOR_DB (--db), SIMULATOR_ADMIN_TOKEN "
        "(--admin-token), SIMULATOR_ALLOWED_HOSTS (--allowed-host, comma-separated), "
        f"SIMULATOR_SERVER; settings: {scalars}. A flag wins over its variable; "
        "variables win over the config file."
    )


class OneLineParser(argparse.ArgumentParser):
    """A parser whose errors are one line (and exit 2), pointing at the subcommand's --help."""

    def error(self, message: str) -> NoReturn:
        """Print `prog: error: message (see prog --help)` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class DefaultsFormatter(argparse.HelpFormatter):
    """--help shows each option's default, where it has one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = OneLineParser(
        prog="planfix-sim", description="A local stand-in for Planfix's chat API."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    p_serve = sub.add_parser(
        "serve",
        help="run the simulator",
        description="Run the simulator until Ctrl-C or SIGTERM.",
        epilog=_environment_help(),
        formatter_class=DefaultsFormatter,
    )
    p_serve.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    p_serve.add_argument(
        "--port", type=bounded_int(0, 65535, "a port"), default=8080, help="port (0: any free)"
    )
    p_serve.add_argument("--db", help="SQLite file kept across restarts (none: temporary)")
    p_serve.add_argument("--config", help="YAML configuration file")
    p_serve.add_argument(
        "--workers",
        type=bounded_int(1, 64, "a worker count"),
        default=serving.DEFAULT_WORKERS,
        help="worker processes",
    )
    p_serve.add_argument(
        "--threads",
        type=bounded_int(1, 1024, "a thread count"),
        default=serving.DEFAULT_THREADS,
        help="threads per worker",
    )
    p_serve.add_argument("--server", choices=serving.SERVERS, help=argparse.SUPPRESS)
    p_serve.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    p_serve.add_argument(
        "--admin-token", help="require this token for the control API and UI (Bearer or cookie)"
    )
    p_serve.add_argument(
        "--allowed-host",
        action="append",
        metavar="NAME",
        help="also serve pages and control API under this Host name (repeatable; "
        "loopback names and the bound address always work; '*': any)",
    )
    loudness = p_serve.add_mutually_exclusive_group()
    loudness.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="log failures only (as --log-level warning): 5xx answers and failed deliveries",
    )
    loudness.add_argument(
        "--log-level",
        choices=list(exchange_log.LEVELS),
        help="info (default): a line per exchange; warning: failures; error: no answer or 5xx",
    )
    p_serve.add_argument(
        "--log-format",
        choices=exchange_log.FORMATS,
        help="text (default): one line per exchange; json: one JSON object per line, for CI",
    )
    p_serve.set_defaults(func=serve)
    from simulator.scenarios.command import add_subcommands as add_scenario_commands

    add_scenario_commands(sub)
    from simulator.testing.fuzz import add_parser as add_fuzz_command

    add_fuzz_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `planfix-sim` console script."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # A misspelt option belongs to the subcommand: show its usage, not the top level's.
        subcommand = _subcommand_parser(parser, args.command)
        subcommand.error(f"unrecognized arguments: {' '.join(unknown)}")
    result: int = args.func(args)
    return result


def _subcommand_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
