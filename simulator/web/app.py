"""The application factory: settings → store → blueprints → error handlers."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, g, got_request_exception, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Map
from werkzeug.wrappers import Response as BaseResponse

from simulator.config.settings import load_settings
from simulator.contract import Form
from simulator.errors import (
    InternalError,
    MalformedRequest,
    PayloadTooLarge,
    SimulatorError,
    error_response,
)
from simulator.planfix import chat_api as planfix_api
from simulator.planfix import exchange_log
from simulator.planfix.exchange import exchange
from simulator.runtime import EXTENSION, Runtime, runtime
from simulator.store import Store
from simulator.web.api import contacts, employees, integrations, journal, status, tasks

log = logging.getLogger("simulator")


def templates_dir() -> str:
    """Where the Jinja2 templates are: inside the installed package, or the checkout's top level."""
    package = Path(__file__).resolve().parent.parent  # simulator/
    for candidate in (package / "templates", package.parent / "templates"):
        if candidate.is_dir():
            return str(candidate)
    raise RuntimeError("templates/ not found next to the simulator package")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build an app: defaults, then `SIMULATOR_*` env, then `config` (plus `db`, `config_file`)."""
    options = dict(config or {})
    db_path = str(options.pop("db", "") or "")
    config_file = options.pop("config_file", None)
    testing = bool(options.pop("testing", False))
    settings = load_settings(options, config_file=config_file)

    temp_dir = None
    if not db_path:
        db_path = os.environ.get("SIMULATOR_DB", "")
    if not db_path:
        # Mailpit's default: a throw-away database, removed at exit.
        temp_dir = tempfile.mkdtemp(prefix="planfix-sim-")
        db_path = str(Path(temp_dir) / "simulator.sqlite3")
        atexit.register(shutil.rmtree, temp_dir, True)
    store = Store(
        db_path,
        journal_retention=settings.journal_retention,
        journal_entry_bytes=settings.journal_entry_bytes,
        journal_bytes=settings.journal_bytes,
        task_number_start=settings.task_number_start,
        contact_number_start=settings.contact_number_start,
    )
    for employee in settings.employees:
        store.add_employee(employee)
    for integration in settings.integrations:
        store.upsert_integration(integration)

    app = Flask(
        "simulator",
        template_folder=templates_dir(),
        static_folder=None,
    )
    app.testing = testing
    # Ids in URLs are SQLite integers: a larger number matches no route (404), not a 500.
    app.url_map.converters["int"] = SqliteInt
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    rt = Runtime(settings=settings, store=store, temp_dir=temp_dir)
    app.extensions[EXTENSION] = rt

    def report(error: Exception) -> None:
        # The edge handles its own errors: tell listeners (the live server's check()) as
        # Flask would for a view's.
        got_request_exception.send(app, _async_wrapper=app.ensure_sync, exception=error)

    # Flask's documented middleware pattern: the chat API's edge sees every request first.
    app.wsgi_app = planfix_api.PlanfixApi(  # type: ignore[method-assign]
        app.wsgi_app, rt, propagate=testing, on_error=report
    )
    for resource in (status, integrations, employees, tasks, contacts, journal):
        app.register_blueprint(resource.bp)
    from simulator.web.api import events

    app.register_blueprint(events.bp)
    from simulator.web.api import export as export_api

    app.register_blueprint(export_api.bp)
    from simulator.web import openapi
    from simulator.web import pages as ui

    app.register_blueprint(openapi.bp)
    app.register_blueprint(ui.bp)
    from simulator.fakechat import customer, webhook
    from simulator.web.api import outbound as delivery_api

    app.register_blueprint(delivery_api.bp)
    app.register_blueprint(webhook.bp)
    app.register_blueprint(customer.bp)
    rt.start_services()
    from simulator.web import security

    security.register(app)
    _register_error_handlers(app)
    return app


class SqliteInt(IntegerConverter):
    """`<int:…>` limited to what SQLite can store."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(SimulatorError)
    def simulator_error(error: SimulatorError) -> BaseResponse:
        g.planfix_error = error.detail
        return error_response(error)

    @app.errorhandler(MalformedRequest)
    def malformed(error: MalformedRequest) -> BaseResponse:
        # A broken body or JSON nested too deeply, wherever it was read: the route's own 400.
        return simulator_error(planfix_api.route_error(error, request.path))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> BaseResponse:
        if error.code == 413:
            return simulator_error(PayloadTooLarge())
        response = jsonify({"error": error.name, "detail": error.description})
        response.status_code = error.code or 500
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    if not app.testing:

        @app.errorhandler(Exception)
        def unexpected(error: Exception) -> BaseResponse:
            # A bug: logged with its traceback, answered as JSON so no client sees HTML.
            log.exception("unexpected error on %s %s", request.method, request.path)
            # Handled here, so Flask will not signal it: tell listeners (the live server's
            # check()) ourselves, or a test would never learn of the bug.
            got_request_exception.send(app, _async_wrapper=app.ensure_sync, exception=error)
            g.planfix_error = f"internal error: {type(error).__name__}"
            return error_response(InternalError())


def stop_services(app: Flask) -> None:
    """Stop the app's background services (event streams, delivery workers); idempotent."""
    runtime(app).stop_services()


def close_app(app: Flask) -> None:
    """Stop the services, release the store's connections and remove a temporary database."""
    rt = runtime(app)
    stop_services(app)
    rt.store.close()
    if rt.temp_dir:
        shutil.rmtree(rt.temp_dir, ignore_errors=True)


def log_requests(app: Flask) -> None:
    """At DEBUG, a log line for each page and control-API request of `app` as well."""

    @app.before_request
    def _started() -> None:
        g.log_started = time.perf_counter()

    @app.after_request
    def _logged(response: BaseResponse) -> BaseResponse:
        started = g.get("log_started")
        # The fake chat's webhook is a Flask view but an exchange: the builder logs it already.
        if started is not None and request.endpoint != exchange_log.WEBHOOK_ENDPOINT:
            took = (time.perf_counter() - started) * 1000
            path = request.full_path.rstrip("?")
            status = response.status_code
            exchange(
                *exchange_log.CONTROL, request.method, path, Form(), status=status, duration_ms=took
            )
        return response
