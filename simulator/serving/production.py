"""`planfix-sim serve` on a production WSGI server: the adapters, and the master's start-up.

The master process validates the configuration, binds the listening socket (so `--port 0`
knows its port before any worker starts), creates the SQLite file and hands everything to the
workers through `SIMULATOR_*` variables; each worker builds its own app with `create_app()`.
Workers share state only through the SQLite file, which is what makes numbering, SSE and
`wait` work across them. The server was chosen by measurement: see README ("Serving").
"""

from __future__ import annotations

import ipaddress
import logging
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from simulator import __version__
from simulator.config.settings import Settings, load_settings
from simulator.errors import ConfigError, StorageUnavailable
from simulator.serving.limits import READ_TIMEOUT_SECONDS
from simulator.store import CannotOpen, SchemaTooNew, Store
from simulator.web.security import THREADS_ENV

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

SERVERS = ("gunicorn", "granian", "werkzeug")
DEFAULT_SERVER = "gunicorn"
# Measured on 2 cores (README, "Serving"): one worker keeps the simulator within half of the
# server's own ceiling, uses 47 MB less and wakes event streams at once (no cross-process
# polling); `--workers 2` answers 63-75 % more requests per second for load tests.
DEFAULT_WORKERS = 1
# SSE streams hold a thread each for as long as the browser stays; many threads keep a few
# streams from starving /webchat/api (idle threads cost memory only, the GIL serialises work).
DEFAULT_THREADS = 32
# A kept-alive connection with no new request is closed after this many seconds.
KEEPALIVE_SECONDS = 5
# How long a stopping worker lets running requests (and SSE streams) finish.
GRACEFUL_SECONDS = 3
# Connections one worker holds at once (gunicorn's default), fewer if open files are scarce;
# every slow client holds one for READ_TIMEOUT_SECONDS at most.
MAX_CONNECTIONS = 1000
FILES_RESERVED = 64  # listener, pipes, logs, the store's own connections
FILES_PER_THREAD = 4  # a SQLite connection per thread: database, WAL, shared memory, spare


def app_from_env() -> Any:
    """Build the simulator in a worker from `SIMULATOR_*` (SIMULATOR_DB names the shared file)."""
    from simulator.planfix import exchange_log
    from simulator.runtime import runtime
    from simulator.web.app import create_app, log_requests  # here: the master builds no app

    app = create_app()
    # Every worker logs its own exchanges (gunicorn forks them, granian spawns them).
    rt = runtime(app)
    exchange_log.configure(rt.settings.log_level, rt.settings.log_format, rt.store)
    if rt.settings.log_level == "debug":
        log_requests(app)  # pages and control API too (no cost otherwise)
    return app


def bare_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """A WSGI app that answers 200 and nothing else: the server's own ceiling, for benchmarks."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def bare_from_env() -> WsgiApp:
    """Factory form of `bare_app`, so both targets load the same way."""
    return bare_app


@dataclass(frozen=True)
class ServeOptions:
    """What `planfix-sim serve` was asked for."""

    host: str = "127.0.0.1"
    port: int = 8080
    db: str = ""
    config_file: str = ""
    admin_token: str = ""
    server: str = DEFAULT_SERVER
    workers: int = DEFAULT_WORKERS
    threads: int = DEFAULT_THREADS
    bare: bool = False
    allowed_hosts: tuple[str, ...] = ()
    log_level: str = ""  # empty: SIMULATOR_LOG_LEVEL, the config file, or "info"
    log_format: str = ""


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def served_hosts(options: ServeOptions, configured: Iterable[str]) -> list[str]:
    """Names the workers answer besides loopback: configured, --allowed-host, the bound address."""
    names = [*configured, *options.allowed_hosts]
    # A wildcard address is no name a browser should use (0.0.0.0 reaches us on some systems).
    if options.host not in ("0.0.0.0", "::", ""):  # noqa: S104
        names.append(f"[{options.host}]" if ":" in options.host else options.host)
    return list(dict.fromkeys(names))


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve(options: ServeOptions) -> int:
    """Run until Ctrl-C or SIGTERM; 2 on a configuration error, 1 when the port is taken."""
    if options.server not in SERVERS:
        print(f"planfix-sim: unknown server {options.server!r}", file=sys.stderr)
        return 2
    env: dict[str, str] = {}
    if options.config_file:
        env["SIMULATOR_CONFIG"] = str(Path(options.config_file).resolve())
    if options.admin_token:
        env["SIMULATOR_ADMIN_TOKEN"] = options.admin_token
    log_settings = {
        name: value
        for name, value in (("log_level", options.log_level), ("log_format", options.log_format))
        if value
    }
    try:
        settings = load_settings(log_settings, config_file=env.get("SIMULATOR_CONFIG") or None)
        served_names = served_hosts(options, settings.allowed_hosts)
        # Checked here: a name the workers would refuse must stop the start, not each worker.
        load_settings({"allowed_hosts": served_names}, environ={})
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"planfix-sim: {problem}", file=sys.stderr)
        return 2
    try:
        sock = bind(options.host, options.port)
    except OSError as exc:
        print(
            f"planfix-sim: cannot listen on {options.host}:{options.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    port = sock.getsockname()[1]
    self_host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host  # noqa: S104
    shown_host = f"[{self_host}]" if ":" in self_host else self_host
    base_url = settings.base_url or f"http://{shown_host}:{port}"
    env["SIMULATOR_BASE_URL"] = base_url
    # The workers log as the flags say (a flag wins over the variable and the config file).
    env["SIMULATOR_LOG_LEVEL"] = settings.log_level
    env["SIMULATOR_LOG_FORMAT"] = settings.log_format
    if served_names:
        env["SIMULATOR_ALLOWED_HOSTS"] = ",".join(served_names)

    temp_dir = None
    db_path = options.db or os.environ.get("SIMULATOR_DB", "")
    if not db_path:
        # Mailpit's default: a throw-away database, removed when the master exits.
        temp_dir = tempfile.mkdtemp(prefix="planfix-sim-")
        db_path = str(Path(temp_dir) / "simulator.sqlite3")
    env["SIMULATOR_DB"] = str(Path(db_path).resolve())
    master_pid = os.getpid()
    started: list[bool] = []
    try:
        if not options.bare:
            try:
                _prepare_store(env["SIMULATOR_DB"], settings)
            except SchemaTooNew as exc:
                # Refuse before touching it: an older release writing a newer file corrupts it.
                print(f"planfix-sim: cannot use database {db_path}: {exc}", file=sys.stderr)
                return 2
            except (CannotOpen, StorageUnavailable, OSError) as exc:
                print(f"planfix-sim: cannot use database {db_path}: {exc}", file=sys.stderr)
                return 1
        os.environ.update(env)
        # Until the server installs its own handlers, a signal still ends us through `finally`.
        signal.signal(signal.SIGTERM, _exit_now)
        signal.signal(signal.SIGINT, _exit_now)

        def ready() -> None:
            started.append(True)
            _banner(
                options,
                base_url,
                env["SIMULATOR_DB"],
                temporary=temp_dir is not None,
                settings=settings,
            )

        return _run(options, sock, ready)
    finally:
        # Forked workers unwind through here too; only the master cleans up.
        if os.getpid() == master_pid:
            with suppress(OSError):  # the server may have closed it already
                sock.close()
            if temp_dir:
                shutil.rmtree(temp_dir, ignore_errors=True)
            if started:
                print("planfix-simulator stopped", flush=True)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _prepare_store(path: str, settings: Any) -> None:
    # Create the schema (and WAL mode) once, before workers race to open the file.
    store = Store(
        path,
        journal_retention=settings.journal_retention,
        task_number_start=settings.task_number_start,
        contact_number_start=settings.contact_number_start,
    )
    try:
        for employee in settings.employees:
            store.add_employee(employee)
        for integration in settings.integrations:
            store.upsert_integration(integration)
    finally:
        store.close()


DEFAULT_INTEGRATION_LINES = {
    "kept": "  default integration: kept beside the configuration's"
    " (keep_default_integration: true)",
    "dropped": "  default integration: dropped (keep_default_integration: false)",
    "declared": "  default integration: declared in the configuration",
}


def _banner(
    options: ServeOptions,
    base: str,
    db_path: str,
    *,
    temporary: bool,
    settings: Settings | None = None,
) -> None:
    from simulator.planfix.chat_api import API_PATHS

    print(f"planfix-simulator {__version__} serving on {base}")
    print(f"  Planfix endpoint:  {base}{API_PATHS[0]}  (also {API_PATHS[1]})")
    print(f"  Fake chat webhook: {base}/fake-chat/webhook")
    print(f"  Sandbox:           {base}/")
    if not options.bare:
        store = Store(db_path)
        try:
            generated = {
                i.name
                for i in (settings.integrations if settings else ())
                if not i.planfix_token or not i.token
            }
            for item in store.integrations():
                print(
                    f"  integration {item.name!r}: planfix_token={item.planfix_token} "
                    f"token={item.token}"
                    # Shown in full on purpose: nothing else prints a token the user did not choose.
                    + (
                        "  (generated; printed only here, at start-up)"
                        if item.name in generated
                        else ""
                    )
                )
        finally:
            store.close()
        if settings is not None and settings.default_integration in DEFAULT_INTEGRATION_LINES:
            print(DEFAULT_INTEGRATION_LINES[settings.default_integration])
    print(f"  database: {db_path}" + (" (temporary)" if temporary else ""))
    print(f"  server: {options.server}, {options.workers} worker(s) x {options.threads} threads")
    names = os.environ.get("SIMULATOR_ALLOWED_HOSTS", "")
    print(f"  pages and control API answer: loopback names{', ' + names if names else ''}")
    if options.admin_token or os.environ.get("SIMULATOR_ADMIN_TOKEN"):
        print("  control API and UI need the admin token")
    if not is_loopback(options.host):
        print(
            f"WARNING: bound to {options.host}: anyone who reaches this address can use the "
            "simulator" + ("" if options.admin_token else " (consider --admin-token)"),
            file=sys.stderr,
        )
    sys.stdout.flush()


def _run(options: ServeOptions, sock: socket.socket, ready: Callable[[], None]) -> int:
    runner = {"gunicorn": _run_gunicorn, "granian": _run_granian, "werkzeug": _run_werkzeug}
    return runner[options.server](options, sock, ready)


# -- gunicorn (gthread) ----------------------------------------------------------------------


def gunicorn_settings(
    options: ServeOptions, sock: socket.socket, ready: Callable[[], None]
) -> dict[str, Any]:
    """Gunicorn settings for the simulator: gthread workers on the already bound socket."""
    return {
        "bind": [f"fd://{sock.fileno()}"],
        "worker_class": bounded_thread_worker(),
        "workers": max(1, options.workers),
        "threads": max(1, options.threads),
        "worker_connections": worker_connections(max(1, options.threads), open_files_limit()),
        "keepalive": KEEPALIVE_SECONDS,
        "graceful_timeout": GRACEFUL_SECONDS,
        # gthread's heartbeat comes from the worker's main loop, not request threads, so long
        # SSE streams do not trip it; it only catches a wedged worker.
        "timeout": 30,
        # The banner is printed once the master handles SIGTERM/SIGINT, so a caller that
        # signals right after reading it gets a clean stop.
        "when_ready": lambda arbiter: ready(),
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "planfix-sim",
    }


def worker_connections(threads: int, open_files: int) -> int:
    """How many connections one worker holds at once: MAX_CONNECTIONS, or what its files allow."""
    # Past the limit, accept() fails with EMFILE and gunicorn's worker dies: stop accepting
    # first (clients wait in the listen backlog). Each thread may hold SQLite's files too.
    spare = open_files - FILES_RESERVED - FILES_PER_THREAD * threads
    return max(threads, min(MAX_CONNECTIONS, spare))


def open_files_limit() -> int:
    """The soft limit on open files, raised to the hard one first (workers inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS * 4 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return MAX_CONNECTIONS * 4 if soft == resource.RLIM_INFINITY else soft


def bounded_thread_worker() -> type[Any]:
    """gunicorn's gthread worker whose request threads only get requests that arrived in full."""
    from simulator.serving.gthread import BoundedThreadWorker  # imports gunicorn: workers only

    return BoundedThreadWorker


def _run_gunicorn(options: ServeOptions, sock: socket.socket, ready: Callable[[], None]) -> int:
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    target = bare_from_env if options.bare else app_from_env
    os.environ[THREADS_ENV] = str(max(1, options.threads))

    class SimulatorApplication(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in gunicorn_settings(options, sock, ready).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return target()

    try:
        SimulatorApplication().run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    return 0


# -- granian ---------------------------------------------------------------------------------


def _run_granian(options: ServeOptions, sock: socket.socket, ready: Callable[[], None]) -> int:
    try:
        from granian.constants import Interfaces
        from granian.http import HTTP1Settings
        from granian.server import Server
    except ImportError:
        # granian is optional: only the server comparison uses it.
        print(
            "planfix-sim: granian is not installed: pip install 'planfix-simulator[bench]'",
            file=sys.stderr,
        )
        return 2

    os.environ[THREADS_ENV] = str(max(1, options.threads))
    # Granian binds in Rust and cannot take our socket: hand over its port (a short race).
    host, port = sock.getsockname()[:2]
    sock.close()
    server = Server(
        "simulator.serving.production:bare_from_env"
        if options.bare
        else "simulator.serving.production:app_from_env",
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=max(1, options.workers),
        blocking_threads=max(1, options.threads),
        http1_settings=HTTP1Settings(header_read_timeout=int(READ_TIMEOUT_SECONDS * 1000)),
        factory=True,
        log_access=False,
        # A worker signalled while still starting ignores SIGTERM and granian's master would
        # wait for it forever (seen in the benchmark): kill stragglers after the grace period.
        workers_kill_timeout=GRACEFUL_SECONDS,
    )
    ready()
    server.serve()
    return 0


# -- werkzeug (reference only) ---------------------------------------------------------------


def _run_werkzeug(options: ServeOptions, sock: socket.socket, ready: Callable[[], None]) -> int:
    from werkzeug.serving import make_server

    if options.workers > 1:
        print("planfix-sim: werkzeug serves in one process; --workers ignored", file=sys.stderr)
    app: Any = bare_app if options.bare else app_from_env()
    # One line per exchange: werkzeug's own line per request would be a second one.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    host, port = sock.getsockname()[:2]
    server = make_server(host, port, app, threaded=True, fd=sock.fileno())

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return, so it must run off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ready()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if not options.bare:
            from simulator.web.app import close_app

            close_app(app)
    return 0


def options_from(args: Any, environ: Mapping[str, str] | None = None) -> ServeOptions:
    """ServeOptions from parsed `serve` arguments."""
    env = os.environ if environ is None else environ
    return ServeOptions(
        host=args.host,
        port=args.port,
        db=args.db or "",
        config_file=args.config or "",
        admin_token=getattr(args, "admin_token", None) or "",
        server=getattr(args, "server", None) or env.get("SIMULATOR_SERVER") or DEFAULT_SERVER,
        workers=getattr(args, "workers", None) or DEFAULT_WORKERS,
        threads=getattr(args, "threads", None) or DEFAULT_THREADS,
        bare=bool(getattr(args, "bare", False)),
        allowed_hosts=tuple(getattr(args, "allowed_host", None) or ()),
        # --quiet is --log-level warning; neither: the variable or the config file decides.
        log_level="warning"
        if getattr(args, "quiet", False)
        else getattr(args, "log_level", None) or "",
        log_format=getattr(args, "log_format", None) or "",
    )
