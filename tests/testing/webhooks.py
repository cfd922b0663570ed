"""Integration webhooks with planted bugs, served on 127.0.0.1 in a thread (werkzeug)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

TOKEN = "integration-secret"
Pairs = list[tuple[str, str]]
Bug = Callable[[Pairs], bool]


def two_attachments(pairs: Pairs) -> bool:
    """A planted bug: two or more attachments."""
    return sum(1 for k, _ in pairs if k == "attachments[url]") >= 2


def plus_in_chat(pairs: Pairs) -> bool:
    """A planted bug: a chatId holding '+'."""
    return any(k == "chatId" and "+" in v for k, v in pairs)


@dataclass
class Webhook:
    """A webhook: correct except for its planted bugs; records every form it received."""

    server_error: Bug | None = None  # answers 500
    mangled_chat: Bug | None = None  # answers 200 with a chatId other than the one sent
    checks_provider: bool = True  # False: no providerId check (a lenient, correct webhook)
    one_at_a_time: bool = False  # answers 500 while another delivery is in flight
    refuses_redelivery: bool = False  # answers 409 to a messageId it has seen
    received: list[Pairs] = field(default_factory=list)
    most_at_once: int = 0
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, pairs: Pairs) -> tuple[int, dict[str, str]]:
        """What this webhook answers to one delivery."""
        form = dict(pairs)
        if self.server_error is not None and self.server_error(pairs):
            return 500, {"error": "Internal Server Error"}
        if form.get("token") != TOKEN:
            return 401, {"error": "Invalid token"}
        needed = ["cmd", "message"] + (["providerId"] if self.checks_provider else [])
        if form.get("cmd") != "newMessage" or not all(form.get(k) for k in needed):
            return 400, {"error": "Invalid parameters"}
        chat = form.get("chatId") or ("phone-" + form.get("contactPhone", ""))
        if chat == "phone-":
            return 400, {"error": "Invalid parameters"}
        if self.mangled_chat is not None and self.mangled_chat(pairs):
            chat = chat.replace("+", " ")  # the classic: a '+' decoded twice
        return 200, {"chatId": chat, "contactId": chat}

    def __call__(self, environ: dict[str, object], start_response: object) -> object:
        """The WSGI app."""
        request = Request(environ)  # type: ignore[arg-type]
        pairs = list(request.form.items(multi=True))
        with self._lock:
            seen = {dict(p).get("messageId") for p in self.received}
            self.received.append(pairs)
            self._in_flight += 1
            crowded = self._in_flight > 1
            self.most_at_once = max(self.most_at_once, self._in_flight)
        time.sleep(0.02)  # long enough for the deliveries of a burst to overlap
        status, body = self.answer(pairs)
        if self.one_at_a_time and crowded:
            status, body = 500, {"error": "database is locked"}
        if self.refuses_redelivery and status == 200 and dict(pairs).get("messageId") in seen:
            status, body = 409, {"error": "duplicate messageId"}
        with self._lock:
            self._in_flight -= 1
        response = Response(json.dumps(body), status, content_type="application/json")
        return response(environ, start_response)  # type: ignore[arg-type]

    def forms(self) -> list[dict[str, str]]:
        """The forms received, as dicts (first value of each name)."""
        return [dict(reversed(pairs)) for pairs in self.received]


def planfix_without_token_check(environ: dict[str, object], start_response: object) -> object:
    """A Planfix stand-in that answers every request 200, whatever its token (a planted bug)."""
    body = json.dumps({"result": "ok", "data": {"number": 1, "chatId": "1", "contactId": "1"}})
    response = Response(body, 200, content_type="application/json")
    return response(environ, start_response)  # type: ignore[arg-type]


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: object) -> None:
        pass


@contextmanager
def serving(webhook: Callable[..., object]) -> Iterator[str]:
    """Serve the WSGI app `webhook` on a free port; yields its URL."""
    server: BaseWSGIServer = make_server(
        "127.0.0.1",
        0,
        webhook,  # type: ignore[arg-type]
        threaded=True,
        request_handler=_Quiet,
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}/planfix?secret=s3"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
