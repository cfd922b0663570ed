"""The pytest plugin, used the way a team testing its integration uses it (through pytester)."""

from __future__ import annotations

import pytest

from simulator.clients import ControlClient
from simulator.serving.live import LiveServer

pytest_plugins = ["pytester"]

# A user's test module: a small chat integration ("bridge") and its tests against the simulator.
USER_SUITE = '''
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Bridge:
    """The integration under test: forwards chat messages to Planfix, takes replies on a webhook."""

    def __init__(self, planfix_url, planfix_token, token):
        self.planfix_url = planfix_url
        self.planfix_token = planfix_token
        self.token = token
        self.received = []
        bridge = self

        class Webhook(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
                if form.get("token") != bridge.token:
                    status, body = 401, {"error": "Invalid token"}
                else:
                    bridge.received.append(form)
                    chat = form.get("chatId") or "new-" + form.get("contactPhone", "")
                    status, body = 200, {"chatId": chat, "contactId": chat}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
        self.webhook_url = f"http://127.0.0.1:{self.server.server_port}/planfix?secret=s3"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def post(self, **fields):
        data = urllib.parse.urlencode(
            {"providerId": "bridge", "planfix_token": self.planfix_token, **fields}
        ).encode()
        try:
            with urllib.request.urlopen(self.planfix_url, data=data, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code

    def customer_says(self, chat_id, name, text):
        return self.post(
            cmd="newMessage", chatId=chat_id, contactId=chat_id, contactName=name, message=text
        )


@pytest.fixture
def planfix_integration_settings():
    return {"token": "bridge-secret"}


@pytest.fixture
def bridge(planfix):
    bridge = Bridge(planfix.url, planfix.token, planfix.chat_token)
    planfix.configure(url=bridge.webhook_url)
    yield bridge
    bridge.stop()


def test_customer_message_becomes_a_task(planfix, bridge):
    assert bridge.customer_says("chat-1", "Ann", "Hello, where is my order?") == 200
    planfix.assert_received("newMessage", chatId="chat-1", message="Hello, where is my order?")
    [task] = planfix.tasks()
    assert task["chat_id"] == "chat-1"
    assert task["contact"]["name"] == "Ann"


def test_operator_reply_reaches_the_webhook(planfix, bridge):
    bridge.customer_says("chat-2", "Bob", "Hi")
    outcome = planfix.reply("It ships today")
    assert outcome["delivery"]["state"] == "delivered", outcome["delivery"]["outcome"]
    [delivered] = bridge.received
    assert delivered["chatId"] == "chat-2"
    assert delivered["message"] == "It ships today"
    planfix.wait_for(direction="to_chat", message="It ships today", timeout=5)


def test_first_message_lets_the_bridge_assign_the_chat(planfix, bridge):
    outcome = planfix.first_message("+15550001", "We have news for you")
    assert outcome["chatId"] == "new-+15550001"
    assert [t["chat_id"] for t in planfix.tasks()] == ["new-+15550001"]


def test_each_test_has_its_own_integration(planfix):
    assert planfix.tasks() == []
    assert planfix.journal() == []
'''


def test_a_users_suite_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bridge=USER_SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_a_failing_assert_received_shows_the_near_miss(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bridge=USER_SUITE
        + """

def test_wrong_expectation(planfix, bridge):
    bridge.customer_says("chat-9", "Ann", "Hello")
    bridge.customer_says("chat-7", "Cid", "Something else")
    planfix.assert_received("newMessage", chatId="chat-9", message="Goodbye")
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "wrong_expectation")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*Planfix received no matching request*'chatId': 'chat-9'*",
            "*closest of 2 entries:*",
            "*newMessage*chatId='chat-9'*",
            "*fields.message: expected 'Goodbye', got 'Hello'*",
        ]
    )


def test_wait_for_times_out_with_the_near_miss(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bridge=USER_SUITE
        + """

def test_waits_in_vain(planfix, bridge):
    bridge.customer_says("chat-3", "Ann", "Hello")
    planfix.wait_for("getTask", chat_id="chat-3", timeout=0.5)
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "waits_in_vain")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*nothing matched within 0.5 s*", "*cmd: expected 'getTask', got 'newMessage'*"]
    )


def test_an_error_inside_the_simulator_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_crash="""
import simulator.planfix.commands


def test_crash(planfix, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom inside the simulator")

    monkeypatch.setattr(simulator.planfix.commands, "run", boom)
    client = planfix.client()
    assert client.new_message("c1", "c1", "hi").status == 500
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*RuntimeError: boom inside the simulator*"])


def test_the_suite_runs_in_parallel_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_bridge=USER_SUITE)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_a_running_simulator_can_be_used_instead(
    pytester: pytest.Pytester, live_server: LiveServer
) -> None:
    pytester.makepyfile(test_bridge=USER_SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", f"--planfix-sim-url={live_server.url}")
    result.assert_outcomes(passed=4)


def test_a_running_simulator_keeps_no_integration_of_the_suites_tests(
    pytester: pytest.Pytester, live_server: LiveServer
) -> None:
    control = ControlClient(live_server.url)
    before = [i["name"] for i in control.integrations()]
    pytester.makepyfile(test_bridge=USER_SUITE)
    for _ in range(2):
        result = pytester.runpytest(
            "-p", "no:cacheprovider", f"--planfix-sim-url={live_server.url}"
        )
        result.assert_outcomes(passed=4)
    assert [i["name"] for i in control.integrations()] == before
