"""The in-thread live server used by tests, the pytest plugin and `planfix-sim run`."""

from __future__ import annotations

import pytest

from simulator.clients.http import send
from simulator.serving.live import LiveServer


def test_a_bug_inside_the_server_thread_reaches_the_test() -> None:
    server = LiveServer().start()
    try:
        assert server.app is not None

        def broken() -> str:
            raise ZeroDivisionError("a bug in a view")

        server.app.add_url_rule("/broken", view_func=broken)
        answer = send("GET", server.url + "/broken")
        assert answer.status == 500
        assert answer.json() == {"error": "Internal error"}, "clients still get JSON"
        with pytest.raises(ZeroDivisionError, match="a bug in a view"):
            server.check()
        server.check()  # reported once
    finally:
        server.stop()


def test_the_server_knows_its_own_url() -> None:
    with LiveServer() as server:
        status = send("GET", server.url + "/api/v1/status").json()
        assert status["base_url"] == server.url
