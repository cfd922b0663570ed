"""`planfix-sim`: the command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from simulator import __version__
from simulator.serving import production as serving


def serve(args: argparse.Namespace) -> int:
    """Run the simulator until Ctrl-C or SIGTERM (the server: simulator/serving/production.py)."""
    return serving.serve(serving.options_from(args))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="planfix-sim", description="A local stand-in for Planfix's chat API."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_serve = sub.add_parser("serve", help="run the simulator")
    p_serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    p_serve.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    p_serve.add_argument("--db", help="SQLite file kept across restarts (default: temporary)")
    p_serve.add_argument("--config", help="YAML configuration file")
    p_serve.add_argument(
        "--workers", type=int, help=f"worker processes (default {serving.DEFAULT_WORKERS})"
    )
    p_serve.add_argument(
        "--threads", type=int, help=f"threads per worker (default {serving.DEFAULT_THREADS})"
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
    p_serve.set_defaults(func=serve)
    from simulator.scenarios.command import add_subcommands as add_scenario_commands

    add_scenario_commands(sub)
    from simulator.testing.fuzz import add_parser as add_fuzz_command

    add_fuzz_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `planfix-sim` console script."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
