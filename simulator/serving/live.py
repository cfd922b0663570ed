"""A live simulator in a background thread, on a free loopback port: for tests and `run`."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from flask import Flask, got_request_exception
from werkzeug.serving import BaseWSGIServer, make_server

from simulator.web.app import close_app, create_app, stop_services


class LiveServer:
    """Serve a fresh app on 127.0.0.1 in a thread; server-side exceptions are kept for `check()`."""

    def __init__(self, config: Mapping[str, Any] | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self._config = dict(config or {})
        self.errors: list[BaseException] = []
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.app: Flask | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:54321."""
        assert self._server is not None, "server not started"  # noqa: S101
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> LiveServer:
        """Bind a free port, build the app with its own URL as base_url, and serve."""
        # Bind first so the app knows its own URL (the default integration calls back into it).
        probe = make_server(self.host, 0, _not_ready, threaded=True)
        port = probe.server_port
        config = {"base_url": f"http://{self.host}:{port}", **self._config}
        self.app = create_app(config)
        got_request_exception.connect(self._keep_error, self.app)
        probe.app = self.app
        self._server = probe
        self._thread = threading.Thread(
            target=probe.serve_forever, name=f"planfix-sim:{port}", daemon=True
        )
        self._thread.start()
        return self

    def _keep_error(self, sender: Flask, exception: BaseException, **_: Any) -> None:
        self.errors.append(exception)

    def check(self) -> None:
        """Re-raise the first exception raised inside the server thread, if any."""
        if self.errors:
            error = self.errors[0]
            self.errors = []
            raise error

    def stop(self) -> None:
        """Stop serving and release the app's store."""
        if self.app is not None:
            # End event streams and workers first: request threads still inside the store
            # must be gone before its connections close.
            stop_services(self.app)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.app is not None:
            close_app(self.app)
        self._server = None
        self._thread = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _not_ready(environ: Any, start_response: Any) -> list[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "application/json")])
    return [b'{"error": "starting"}']
