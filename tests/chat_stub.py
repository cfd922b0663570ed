"""A scriptable integration for tests: its own little HTTP server on loopback.

It records every call (path, query, form pairs in order, headers) and answers with the next
scripted behaviour, else the default: a contract-abiding `{"chatId", "contactId"}`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from simulator.clients.http import request_json
from simulator.runtime import runtime
from simulator.serving.live import LiveServer

T = TypeVar("T")

# The timeout (s) to give an integration whose stub answers at once: far above any delay a busy
# machine adds, so a scripted answer is never mistaken for a timeout (a hang still ends at it).
ANSWER_BUDGET = 30.0


@dataclass(frozen=True)
class Call:
    """One request the stub received."""

    path: str
    query: str
    form: list[tuple[str, str]]
    headers: dict[str, str]
    # When it arrived (time.monotonic()): tells which of two processes in turn made it.
    at: float = field(default_factory=time.monotonic)

    def get(self, key: str) -> str | None:
        """The first value of a form field."""
        return next((v for k, v in self.form if k == key), None)


Behaviour = Callable[[Call], Any]  # returns a Response, or "drop" / "hang"


def contract_answer(call: Call) -> Response:
    """What a well-behaved integration answers: the chat (assigned when new) and its contact."""
    chat_id = call.get("chatId") or f"stub-chat-{call.get('contactPhone')}"
    return json_answer({"chatId": chat_id, "contactId": f"contact-of-{chat_id}"})


def json_answer(body: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(json.dumps(body), status=status, mimetype="application/json")


def raw_answer(body: str, status: int = 200, mimetype: str = "text/plain") -> Response:
    """An answer with exactly this body."""
    return Response(body, status=status, mimetype=mimetype)


@dataclass
class IntegrationStub:
    """The integration under test's stand-in: serves in a thread until `stop()`."""

    default: Behaviour = contract_answer
    script: list[Behaviour] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """Base URL of the stub."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def then(self, *behaviours: Behaviour) -> IntegrationStub:
        """Answer the next calls with these behaviours, in order."""
        with self._lock:
            self.script.extend(behaviours)
        return self

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        call = Call(
            path=request.path,
            query=request.query_string.decode(),
            form=parse_qsl(request.get_data(as_text=True), keep_blank_values=True),
            headers=dict(request.headers),
        )
        with self._lock:
            self.calls.append(call)
            behaviour = self.script.pop(0) if self.script else self.default
        result = behaviour(call)
        if result == "hang":
            self.release.wait(30)
            result = contract_answer(call)
        if result == "drop":
            with suppress(OSError):
                environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
            result = Response(b"")
        return result(environ, start_response)

    def stop(self) -> None:
        """Release hanging calls and stop serving."""
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def hang(_: Call) -> str:
    """Answer only when the stub's `release` is set."""
    return "hang"


def drop(_: Call) -> str:
    """Close the connection without an answer."""
    return "drop"


def refused_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/webhook"


def wait_until(probe: Callable[[], T | None], timeout: float = 15.0) -> T:
    """Poll `probe` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


def stub_server() -> Iterator[IntegrationStub]:
    """Fixture body: a stub that is stopped after the test."""
    stub = IntegrationStub()
    yield stub
    stub.stop()


def background_errors(server: LiveServer) -> list[BaseException]:
    """Exceptions raised in the server's delivery worker and fake-chat reporter (bugs)."""
    assert server.app is not None
    rt = runtime(server.app)
    return [*rt.delivery.errors, *rt.reporter.errors]


@pytest.fixture(autouse=True)
def _no_background_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose live server's background threads raised."""
    if "live_server" not in request.fixturenames:
        yield
        return
    server: LiveServer = request.getfixturevalue("live_server")
    yield
    assert background_errors(server) == []


def api(server: LiveServer, method: str, path: str, data: Any = None, status: int = 200) -> Any:
    """Call the control API and return its JSON, checking the status."""
    answer = request_json(method, server.url + path, data)
    assert answer.status == status, answer.text
    return answer.json()
