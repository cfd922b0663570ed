"""`planfix-sim`: the command line."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from werkzeug.serving import make_server

from simulator import __version__
from simulator.app import close_app, create_app
from simulator.context import runtime
from simulator.errors import ConfigError
from simulator.planfix_api import API_PATHS


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> int:
    """Run the simulator until Ctrl-C or SIGTERM."""
    host = args.host
    self_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    config: dict[str, object] = {"db": args.db or ""}
    if args.config:
        config["config_file"] = args.config
    try:
        # Bind before building the app so `--port 0` knows its port for self-calls.
        server = make_server(host, args.port, _starting, threaded=True)
    except OSError as exc:
        print(f"planfix-sim: cannot listen on {host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    config["base_url"] = f"http://{self_host}:{server.server_port}"
    try:
        app = create_app(config)
    except ConfigError as exc:
        print(f"planfix-sim: {exc}", file=sys.stderr)
        server.server_close()
        return 2
    server.app = app

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it must run off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    # Handlers go in before the banner: whoever reads the banner may signal at once.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    rt = runtime(app)
    base = rt.base_url
    print(f"planfix-simulator {__version__} serving on {base}")
    print(f"  Planfix endpoint:  {base}{API_PATHS[0]}  (also {API_PATHS[1]})")
    print(f"  Fake chat webhook: {base}/fake-chat/webhook")
    print(f"  Sandbox:           {base}/")
    for item in rt.store.integrations():
        print(f"  integration {item.name!r}: planfix_token={item.planfix_token} token={item.token}")
    print(f"  database: {rt.store.path}" + ("" if args.db else " (temporary)"))
    if not _is_loopback(host):
        print(
            f"WARNING: bound to {host}: anyone who reaches this address can use the simulator",
            file=sys.stderr,
        )
    sys.stdout.flush()

    try:
        server.serve_forever()
    finally:
        server.server_close()
        close_app(app)
    print("planfix-simulator stopped")
    return 0


def _starting(environ: object, start_response: object) -> list[bytes]:
    raise RuntimeError("the app is not ready yet")


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
    p_serve.set_defaults(func=serve)
    from simulator.scenarios.command import add_subcommands as add_scenario_commands

    add_scenario_commands(sub)
    from simulator.fuzz import add_parser as add_fuzz_command

    add_fuzz_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `planfix-sim` console script."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
