"""Malformed requests at the edge, over real HTTP: each gets its route's 400, never a 500.

A broken chunked body, JSON nested past what the parser takes, a line break in the path and a
method outside RFC 9110's token grammar are the client's fault: the answer says so in the body
that route documents for bad input (Planfix's wire body on the chat paths, the control API's
`{"error": "Bad request", "detail": ...}` elsewhere).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from simulator.serving.live import LiveServer
from simulator.web.app import close_app, create_app
from tests.conftest import PLANFIX_TOKEN
from tests.served import Served, raw_exchange

BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
WIRE_PATHS = ("/webchat/api", "/chat/api", "/fake-chat/webhook")
WIRE_400 = {"error": "Invalid parameters"}
ADMIN_TOKEN = "edge-admin-token"

BAD_CHUNKS = {
    "size not hex": b"zz\r\nab\r\n0\r\n\r\n",
    "bad extension": b"2;a=\x01\r\nab\r\n0\r\n\r\n",
    "no CRLF after data": b"2\r\nabXX0\r\n\r\n",
    "bad trailer": b"2\r\nab\r\n0\r\nBad Trailer\r\n\r\n",
}
NESTED = {
    "3000 open brackets": b"[" * 3000,
    "50000 open brackets": b"[" * 50_000,
}
# Parses, but no body needs it: a schema check would recurse through it and echo it back in
# its message (and crash with RecursionError near the interpreter's limit).
PARSEABLE_DEEP = b'{"x": ' + b"[" * 200 + b"1" + b"]" * 200 + b"}"


def _api_routes() -> list[tuple[str, str]]:
    """(method, path) of every /api/v1 route taking a body, read from the app's url_map."""
    app = create_app()
    try:
        routes = []
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/api/v1/"):
                continue
            values = {
                name: 1 if type(conv).__name__ == "SqliteInt" else "default"
                for name, conv in rule._converters.items()
            }
            path = rule.build(values, append_unknown=False)
            assert path is not None
            routes += [(m, path[1]) for m in sorted(rule.methods or ()) if m in BODY_METHODS]
        return routes
    finally:
        close_app(app)


API_ROUTES = _api_routes()
ALL_ROUTES = [*API_ROUTES, *(("POST", p) for p in WIRE_PATHS)]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """One `planfix-sim serve` (gunicorn, the default) for the module."""
    server = Served()
    yield server
    assert server.stop() == 0
    assert "Traceback" not in server.stderr, server.stderr


@pytest.fixture(scope="module")
def json_takers(served: Served) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of the operations whose request body is JSON."""
    spec = requests.get(served.url + "/openapi.json", timeout=30).json()
    return {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if isinstance(op, dict)
        and "application/json" in op.get("requestBody", {}).get("content", {})
    }


def _answer(raw: bytes) -> tuple[int, dict[str, object]]:
    """Status and JSON body of a raw HTTP answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/json" in head.lower(), raw
    return status, json.loads(body)


def _expect_route_400(path: str, raw: bytes) -> None:
    status, body = _answer(raw)
    assert status == 400, raw
    if path in WIRE_PATHS:
        assert body == WIRE_400
    else:
        assert body["error"] == "Bad request"
        assert body["detail"]


@pytest.mark.parametrize("kind", BAD_CHUNKS)
@pytest.mark.parametrize(("method", "path"), ALL_ROUTES, ids=[f"{m} {p}" for m, p in ALL_ROUTES])
def test_a_malformed_chunked_body_gets_the_routes_400(
    served: Served, method: str, path: str, kind: str
) -> None:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    _expect_route_400(path, raw_exchange(served.port, head.encode() + BAD_CHUNKS[kind]))


def _openapi_path(path: str) -> str:
    return (
        path.replace("/1/", "/{number}/")
        .replace("/default", "/{ref}")
        .replace("deliveries/{number}", "deliveries/{delivery_id}")
    )


@pytest.mark.parametrize("nested", NESTED)
@pytest.mark.parametrize(("method", "path"), ALL_ROUTES, ids=[f"{m} {p}" for m, p in ALL_ROUTES])
def test_deeply_nested_json_gets_the_routes_400(
    served: Served, json_takers: set[tuple[str, str]], method: str, path: str, nested: str
) -> None:
    body = NESTED[nested]
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    raw = raw_exchange(served.port, head.encode() + body)
    if path in WIRE_PATHS or (method, _openapi_path(path)) in json_takers:
        _expect_route_400(path, raw)
    else:  # a route that takes no body ignores it
        assert _answer(raw)[0] != 500, raw


@pytest.mark.parametrize(("method", "path"), ALL_ROUTES, ids=[f"{m} {p}" for m, p in ALL_ROUTES])
def test_json_deeper_than_any_body_needs_gets_the_routes_400(
    live_server: LiveServer, json_takers: set[tuple[str, str]], method: str, path: str
) -> None:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(PARSEABLE_DEEP)}\r\nConnection: close\r\n\r\n"
    )
    raw = raw_exchange(_port(live_server), head.encode() + PARSEABLE_DEEP)
    if path in WIRE_PATHS or (method, _openapi_path(path)) in json_takers:
        _expect_route_400(path, raw)
        assert len(raw) < 1000  # the detail does not echo the body back
    else:
        assert _answer(raw)[0] != 500, raw


def test_the_json_routes_cover_what_openapi_declares(json_takers: set[tuple[str, str]]) -> None:
    declared = {(m, p) for m, p in json_takers if p.startswith("/api/v1/")}
    tested = {(m, _openapi_path(p)) for m, p in API_ROUTES}
    assert declared <= tested


class AdminServed(Served):
    """`planfix-sim serve --admin-token`: ready once the control API answers the token."""

    def _wait_for_workers(self) -> None:
        for _ in range(300):
            try:
                got = requests.get(
                    self.url + "/api/v1/status",
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    timeout=5,
                )
                if got.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError("workers never answered")


LINE_BREAK_PATHS = (
    "/api/v1/status%0A",
    "/journal%0D%0ASet-Cookie:%20x=1",
    "/%0A",
    "/api/v1/integrations/a%0Ab",
    "/ui/a%0Db",
    "/webchat/api%0A",
)


@pytest.mark.parametrize("admin", [False, True], ids=["open", "admin token"])
def test_a_line_break_in_the_path_gets_400(admin: bool) -> None:
    server = AdminServed("--admin-token", ADMIN_TOKEN) if admin else Served()
    try:
        for path in LINE_BREAK_PATHS:
            for query in ("", f"?admin_token={ADMIN_TOKEN}"):
                request = (
                    f"GET {path}{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
                raw = raw_exchange(server.port, request.encode())
                _expect_route_400(path, raw)
                assert b"set-cookie: x" not in raw.lower()
    finally:
        assert server.stop() == 0
    assert "Traceback" not in server.stderr, server.stderr


NON_TOKEN_METHODS = ("A;B", "X(Y)", 'Q"', "M{}", "A\\B")


@pytest.mark.parametrize("method", NON_TOKEN_METHODS)
def test_a_method_outside_the_token_grammar_is_refused_and_journaled_escaped(
    live_server: LiveServer, method: str
) -> None:
    # gunicorn refuses such methods itself; Werkzeug's server (the pytest plugin's) passes
    # them on, so the app must refuse them too.
    for path in ("/webchat/api", "/api/v1/status", "/fake-chat/webhook"):
        request = f"{method} {path}?q=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        _expect_route_400(path, raw_exchange(_port(live_server), request.encode()))
    [entry] = requests.get(live_server.url + "/api/v1/journal", timeout=30).json()
    assert entry["status"] == 400
    assert entry["url"] == "/webchat/api?q=1"
    assert method not in entry["method"]
    assert all(c.isalnum() or c == "%" for c in entry["method"])
    assert [n["code"] for n in entry["notes"]] == ["bad-method"]


def test_a_form_still_reaches_the_command_over_the_guarded_stream(served: Served) -> None:
    form = {"cmd": "getTask", "providerId": "p", "chatId": "none", "planfix_token": PLANFIX_TOKEN}
    chunked = requests.post(
        served.api,
        data=iter([b"&".join(f"{k}={v}".encode() for k, v in form.items())]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert (chunked.status_code, chunked.json()) == (400, {"error": "task not found"})


def _port(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])
