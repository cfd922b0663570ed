"""Hostile browsers and callers: DNS rebinding (Host), SSRF schemes, `Origin: null`, non-JSON
bodies, and event streams of pages that have gone."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from simulator.config.settings import load_settings
from simulator.errors import ConfigError
from simulator.serving.production import ServeOptions, serve, served_hosts
from simulator.web.app import close_app, create_app, templates_dir
from simulator.web.security import OPEN_PREFIXES
from tests.served import Served, raw_exchange

BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# A value for each URL variable of the routes; a new variable falls back to "1".
SAMPLE_ARGS = {"number": "1000", "entry_id": "1", "delivery_id": "1", "ref": "default"}
SAMPLE_ARGS["name"] = "common.js"


def _routes() -> list[tuple[str, str]]:
    """(method, concrete path) of every route of the app that is not an integration's."""
    app = create_app({"testing": True})
    try:
        found = []
        for rule in app.url_map.iter_rules():
            if rule.rule.startswith(OPEN_PREFIXES):
                continue
            path = re.sub(
                r"<(?:\w+:)?(\w+)>", lambda m: SAMPLE_ARGS.get(m.group(1), "1"), rule.rule
            )
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((method, path))
        return sorted(found)
    finally:
        close_app(app)


ROUTES = _routes()
BODY_ROUTES = [(m, p) for m, p in ROUTES if m in BODY_METHODS]


def _call(client: FlaskClient, method: str, path: str, host: str, **kwargs: Any) -> Any:
    if method in BODY_METHODS and "data" not in kwargs:
        kwargs["json"] = {}
    return client.open(path, method=method, base_url=f"http://{host}", **kwargs)


def test_the_route_table_covers_the_control_api_pages_and_event_stream() -> None:
    paths = {p for _, p in ROUTES}
    assert {"/", "/journal", "/settings", "/api/v1/events", "/api/v1/chat/messages"} <= paths
    assert ("POST", "/api/v1/reset") in ROUTES
    assert not any(p.startswith("/fake-chat/") for p in paths)


# -- Host: DNS rebinding ---------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_rebound_name_is_refused_on_every_browser_facing_route(
    client: FlaskClient, method: str, path: str
) -> None:
    # What a page on evil.test sends after rebinding its name to 127.0.0.1.
    headers = {"Origin": "http://evil.test:8080", "Sec-Fetch-Site": "same-origin"}
    response = _call(client, method, path, "evil.test:8080", headers=headers)
    assert response.status_code == 403, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == "Host not allowed"
    assert "evil.test" in body["detail"]
    assert "--allowed-host" in body["detail"]


def test_a_refused_host_changes_nothing(client: FlaskClient) -> None:
    _call(client, "POST", "/api/v1/integrations", "evil.test", json={"name": "planted"})
    names = [i["name"] for i in client.get("/api/v1/integrations").get_json()]
    assert "planted" not in names


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "localhost:8080",
        "LOCALHOST:8080",
        "127.0.0.1",
        "127.0.0.1:1",
        "127.5.6.7:9999",
        "[::1]:8080",
        "[::1]",
    ],
)
def test_loopback_names_are_served_with_any_port(client: FlaskClient, host: str) -> None:
    assert _call(client, "GET", "/api/v1/status", host).status_code == 200
    assert _call(client, "POST", "/api/v1/reset", host).status_code == 200


@pytest.mark.parametrize(
    "host",
    [
        "evil.test",
        "localhost.evil.test",
        "127.0.0.1.evil.test",
        "0.0.0.0:8080",  # some browsers route 0.0.0.0 to this machine
        "[::]:8080",
        "10.0.0.1",
        "sim.test.",
    ],
)
def test_other_names_and_addresses_are_refused(client: FlaskClient, host: str) -> None:
    assert _call(client, "GET", "/api/v1/status", host).status_code == 403


@pytest.mark.parametrize(
    ("config", "host"),
    [
        ({"base_url": "http://sim.internal:9000"}, "sim.internal:9000"),
        ({"base_url": "http://sim.internal:9000"}, "SIM.internal"),
        ({"base_url": "http://[fd00::5]:9000"}, "[fd00::5]:9000"),
        ({"allowed_hosts": ["planfix-sim"]}, "planfix-sim:8080"),
        ({"allowed_hosts": ["planfix-sim", "10.1.2.3"]}, "10.1.2.3"),
        ({"allowed_hosts": ["*"]}, "anything.test"),
    ],
)
def test_the_base_url_host_and_allowed_hosts_are_served(config: dict[str, Any], host: str) -> None:
    app = create_app({"testing": True, **config})
    try:
        response = app.test_client().get("/api/v1/status", base_url=f"http://{host}")
        assert response.status_code == 200
        refused = app.test_client().get("/api/v1/status", base_url="http://evil.test")
        assert refused.status_code == (200 if config.get("allowed_hosts") == ["*"] else 403)
    finally:
        close_app(app)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SIMULATOR_ALLOWED_HOSTS": "a.test, b.test"}, ("a.test", "b.test")),
        ({"SIMULATOR_ALLOWED_HOSTS": ""}, ()),
        ({}, ()),
    ],
)
def test_allowed_hosts_come_from_the_environment_too(
    environ: dict[str, str], expected: tuple[str, ...]
) -> None:
    assert load_settings(environ=environ).allowed_hosts == expected


@pytest.mark.parametrize("bad", [[""], ["http://x.test"], ["a b"], ["x.test/path"]])
def test_an_allowed_host_that_is_not_a_host_name_is_a_config_error(bad: list[str]) -> None:
    with pytest.raises(ConfigError, match="allowed_hosts"):
        load_settings({"allowed_hosts": bad}, environ={})


@pytest.mark.parametrize("path", ["/webchat/api", "/chat/api", "/fake-chat/webhook"])
def test_integration_paths_answer_any_host(client: FlaskClient, path: str) -> None:
    # Integrations in containers call the simulator by whatever name their network gives it.
    response = client.post(path, data={"cmd": "getTask"}, base_url="http://sim-in-docker:8080")
    assert response.status_code != 403
    assert response.status_code < 500


def test_serve_refuses_foreign_hosts_and_serves_its_allowed_hosts() -> None:
    served = Served("--allowed-host", "sim.container", "--allowed-host", "other.container")
    try:

        def status(host: bytes, path: bytes = b"/api/v1/status") -> bytes:
            answer = raw_exchange(
                served.port,
                b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n",
            )
            return answer.split(b"\r\n", 1)[0]

        port = str(served.port).encode()
        assert status(b"evil.test:" + port).startswith(b"HTTP/1.1 403")
        assert status(b"evil.test:" + port, b"/api/v1/events").startswith(b"HTTP/1.1 403")
        assert status(b"evil.test:" + port, b"/").startswith(b"HTTP/1.1 403")
        for host in (b"sim.container:" + port, b"other.container", b"127.0.0.1:" + port):
            assert status(host).startswith(b"HTTP/1.1 200"), host
        # HTTP/1.0 without Host: no browser sends that, and the server fills in its address.
        bare = raw_exchange(served.port, b"GET /api/v1/status HTTP/1.0\r\n\r\n")
        assert bare.startswith(b"HTTP/1.0 200") or bare.startswith(b"HTTP/1.1 200"), bare[:80]
        # The integration side answers whatever name it is called by.
        form = b"cmd=getTask"
        chat = raw_exchange(
            served.port,
            b"POST /webchat/api HTTP/1.1\r\nHost: sim-in-docker\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(len(form)).encode() + b"\r\n\r\n" + form,
        )
        assert not chat.startswith(b"HTTP/1.1 403"), chat[:80]
    finally:
        served.stop()


# -- Origin: null and bodies that are not JSON ----------------------------------------------


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_origin_null_is_refused_on_state_changing_routes(
    client: FlaskClient, method: str, path: str
) -> None:
    # A sandboxed iframe or a data: page sends Origin: null (older browsers no Sec-Fetch-Site).
    response = _call(client, method, path, "localhost", headers={"Origin": "null"})
    assert response.status_code == 403
    assert response.get_json()["error"] == "Cross-site request refused"


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_a_body_that_is_not_json_is_refused_with_415(
    client: FlaskClient, method: str, path: str, content_type: str
) -> None:
    # text/plain, form and multipart bodies are what an HTML form can send cross-site.
    response = _call(
        client, method, path, "localhost", data='{"name": "x"}', content_type=content_type
    )
    assert response.status_code == 415
    body = response.get_json()
    assert body["error"] == "Unsupported media type"
    assert "application/json" in body["detail"]


def test_a_text_plain_body_creates_nothing(client: FlaskClient) -> None:
    sent = json.dumps({"name": "smuggled"})
    response = client.post("/api/v1/integrations", data=sent, content_type="text/plain")
    assert response.status_code == 415
    assert "smuggled" not in [i["name"] for i in client.get("/api/v1/integrations").get_json()]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"]
)
def test_json_bodies_and_empty_bodies_pass(client: FlaskClient, content_type: str) -> None:
    sent = json.dumps({"name": f"ok-{len(content_type)}"})
    made = client.post("/api/v1/integrations", data=sent, content_type=content_type)
    assert made.status_code == 201
    assert client.post("/api/v1/reset").status_code == 200  # no body, no type: nothing to parse


def test_the_pages_send_their_bodies_as_json() -> None:
    source = (Path(templates_dir()) / "ui" / "common.js").read_text(encoding="utf-8")
    assert 'init.headers["Content-Type"] = "application/json"' in source


# -- integration URLs and planfix_url: http(s) only --------------------------------------------

NOT_HTTP = [
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_SET",
    "ftp://example.test/x",
    "javascript:alert(1)",
    "//evil.test/hook",
    "http://",
    "http:///path",
    "example.test/hook",
    "{base_url}x",
]
HTTP = [
    "http://127.0.0.1:9/hook",
    "HTTPS://example.test/webhook/planfix?secret=S",
    "http://[::1]:9/x",
    "{base_url}/fake-chat/webhook",
    "{base_url}/fake-chat/webhook?secret=S",
]


def _url_call(client: FlaskClient, where: str, url: str) -> Any:
    if where == "new integration":
        return client.post("/api/v1/integrations", json={"url": url})
    if where == "changed integration":
        return client.patch("/api/v1/integrations/default", json={"url": url})
    if where == "customer message":
        return client.post("/api/v1/chat/messages", json={"planfix_url": url, "message": "m"})
    return client.post("/api/v1/chat/commands", json={"planfix_url": url, "cmd": "getTask"})


WHERE = ["new integration", "changed integration", "customer message", "customer command"]


# planfix_url takes no {base_url} placeholder, so those URLs are only tried on integrations.
URL_CASES = [
    (where, url)
    for where in WHERE
    for url in NOT_HTTP
    if not (where.startswith("customer") and url.startswith("{base_url}"))
]


@pytest.mark.parametrize(("where", "url"), URL_CASES)
def test_urls_that_are_not_http_are_refused(client: FlaskClient, where: str, url: str) -> None:
    response = _url_call(client, where, url)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert "url" in response.get_json()["detail"]
    stored = [i["url"] for i in client.get("/api/v1/integrations").get_json()]
    assert url not in stored


@pytest.mark.parametrize("url", HTTP)
def test_http_and_https_integration_urls_are_stored(client: FlaskClient, url: str) -> None:
    made = client.post("/api/v1/integrations", json={"url": url})
    assert made.status_code == 201, made.get_data(as_text=True)
    assert made.get_json()["url"] == url


def test_a_config_file_integration_url_must_be_http() -> None:
    bad = {"name": "x", "planfix_token": "p", "token": "t", "url": "file:///etc/passwd"}
    with pytest.raises(ConfigError, match="url"):
        load_settings({"integrations": [bad]}, environ={})


# -- event streams of pages that have gone -----------------------------------------------------


def _open_stream(port: int) -> tuple[socket.socket, bytes]:
    """Open /api/v1/events as a page does and read its answer's first bytes, all of them."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    got = b""
    # Read until the stream's hello (or a refusal's JSON): a close with unread bytes would be
    # a reset, which the server notices at once; a page that goes sends a plain FIN.
    while b"connected\n\n" not in got and not (got.startswith(b"HTTP/1.1 503") and b"}" in got):
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return sock, got


def test_reloading_a_page_40_times_frees_its_event_streams_within_2_seconds() -> None:
    served = Served()  # the default thread count: 24 stream slots
    try:
        for _ in range(40):
            # A reload: the old page's stream closes as the new page opens its own.
            sock, head = _open_stream(served.port)
            sock.close()
        deadline = time.monotonic() + 2.0
        statuses = []
        while True:
            sock, head = _open_stream(served.port)
            sock.close()
            statuses.append(head[:12])
            if head.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert head.startswith(b"HTTP/1.1 200"), f"2 s after the last reload: {statuses}"
    finally:
        served.stop()


@pytest.mark.parametrize(
    ("host", "flags", "configured", "expected"),
    [
        ("127.0.0.1", (), (), ["127.0.0.1"]),
        ("0.0.0.0", (), (), []),  # a wildcard address is no name
        ("::", ("sim",), (), ["sim"]),
        ("::1", (), (), ["[::1]"]),
        ("192.168.5.5", ("sim", "sim"), ("cfg.test",), ["cfg.test", "sim", "192.168.5.5"]),
    ],
)
def test_serve_passes_its_bound_address_and_allowed_hosts_to_the_workers(
    host: str, flags: tuple[str, ...], configured: tuple[str, ...], expected: list[str]
) -> None:
    options = ServeOptions(host=host, allowed_hosts=flags)
    assert served_hosts(options, configured) == expected


def test_serve_refuses_to_start_with_an_allowed_host_that_is_not_a_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert serve(ServeOptions(port=0, allowed_hosts=("http://sim.test/",))) == 2
    assert "allowed_hosts" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    [
        "htTPS://L<\x15Iom~BT{=Qx)3",  # a control character in the host
        "http://example.test/\x0e",  # a control character in the path
        "http://example.test:port/",  # a port that is not a number
    ],
)
def test_a_planfix_url_no_request_can_carry_is_reported_not_a_500(
    client: FlaskClient, url: str
) -> None:
    answer = client.post("/api/v1/chat/commands", json={"planfix_url": url, "cmd": "getTask"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["status"] is None
    assert answer.get_json()["error"].startswith("network: ")
