"""Security: admin token on the control API and UI, masked secrets, no URL ever fetched."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import requests

from simulator.masking import mask_secret
from simulator.serving.live import LiveServer
from simulator.web.security import mask_entry
from tests.conftest import PLANFIX_TOKEN

ADMIN = "admin-0123456789abcdef"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("303cb962ac59075b964b07152d234b70", "303c\u20264b70"),
        ("202cb962ac59075b964b07152d234b70", "202c\u20264b70"),
        ("abcdefghijkl", "abcd\u2026ijkl"),
        ("short", "\u2026"),
        ("", ""),
    ],
)
def test_secrets_keep_four_characters_at_each_end(value: str, shown: str) -> None:
    assert mask_secret(value) == shown


def test_only_token_fields_of_a_journal_form_are_masked() -> None:
    entry = {
        "id": 1,
        "form": [
            ["cmd", "newMessage"],
            ["planfix_token", "303cb962ac59075b964b07152d234b70"],
            ["token", "202cb962ac59075b964b07152d234b70"],
            ["message", "303cb962ac59075b964b07152d234b70"],
        ],
    }
    assert mask_entry(entry)["form"] == [
        ["cmd", "newMessage"],
        ["planfix_token", "303c\u20264b70"],
        ["token", "202c\u20264b70"],
        ["message", "303cb962ac59075b964b07152d234b70"],
    ]
    assert entry["form"][1][1] == "303cb962ac59075b964b07152d234b70", "the input is not changed"


@pytest.fixture
def guarded() -> Iterator[LiveServer]:
    """A live simulator with an admin token."""
    server = LiveServer({"admin_token": ADMIN}).start()
    yield server
    server.stop()
    server.check()


def test_without_an_admin_token_the_control_api_is_refused(guarded: LiveServer) -> None:
    for path in ("/api/v1/status", "/api/v1/journal", "/", "/openapi.json"):
        answer = requests.get(guarded.url + path, timeout=10, allow_redirects=False)
        assert answer.status_code == 401, path
        assert answer.json() == {"error": "Admin token required"}
    wrong = requests.get(
        guarded.url + "/api/v1/status", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert wrong.status_code == 401


def test_a_bearer_header_opens_the_control_api(guarded: LiveServer) -> None:
    answer = requests.get(
        guarded.url + "/api/v1/status", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
    )
    assert answer.status_code == 200
    assert answer.json()["base_url"] == guarded.url


def test_visiting_once_with_the_token_leaves_a_cookie_for_the_ui(guarded: LiveServer) -> None:
    with requests.Session() as browser:
        first = browser.get(f"{guarded.url}/?admin_token={ADMIN}", timeout=10)
        assert first.status_code == 200
        assert first.url == guarded.url + "/", "the token is dropped from the address bar"
        assert browser.get(guarded.url + "/api/v1/status", timeout=10).status_code == 200


def test_integrations_reach_the_chat_api_and_webhook_without_the_admin_token(
    guarded: LiveServer,
) -> None:
    form = {
        "cmd": "newMessage",
        "providerId": "sec",
        "chatId": "c1",
        "planfix_token": PLANFIX_TOKEN,
        "message": "hello",
        "contactId": "u1",
        "contactName": "Ann",
    }
    assert requests.post(guarded.url + "/webchat/api", data=form, timeout=10).status_code == 200
    hook = requests.post(guarded.url + "/fake-chat/webhook", data={"cmd": "x"}, timeout=10)
    # The fake chat answers for itself (its own chat token check), not the admin guard.
    assert hook.json() != {"error": "Admin token required"}


def test_journal_masks_tokens_unless_revealed(live_server: LiveServer) -> None:
    form = {
        "cmd": "getTask",
        "providerId": "sec",
        "chatId": "nope",
        "planfix_token": PLANFIX_TOKEN,
    }
    requests.post(live_server.url + "/webchat/api", data=form, timeout=10)
    masked = requests.get(live_server.url + "/api/v1/journal", timeout=10).json()[-1]["form"]
    assert ["planfix_token", "303c\u20264b70"] in masked
    shown = requests.get(live_server.url + "/api/v1/journal?reveal=1", timeout=10).json()
    assert ["planfix_token", PLANFIX_TOKEN] in shown[-1]["form"]
    one = f"{live_server.url}/api/v1/journal/{shown[-1]['id']}"
    assert ["planfix_token", "303c\u20264b70"] in requests.get(one, timeout=10).json()["form"]
    revealed = requests.get(one + "?reveal=1", timeout=10).json()["form"]
    assert ["planfix_token", PLANFIX_TOKEN] in revealed


def test_no_request_parameter_makes_the_simulator_fetch_a_url(live_server: LiveServer) -> None:
    # A loopback listener stands for any URL an attacker could name: nothing may connect to it.
    with socket.socket() as trap:
        trap.bind(("127.0.0.1", 0))
        trap.listen(16)
        trap.setblocking(False)
        bait = f"http://127.0.0.1:{trap.getsockname()[1]}"
        api = live_server.url + "/webchat/api"
        first = requests.post(
            api,
            data=[
                ("cmd", "newMessage"),
                ("providerId", "sec"),
                ("chatId", "fetch"),
                ("planfix_token", PLANFIX_TOKEN),
                ("message", "see attached"),
                ("contactId", "u1"),
                ("contactName", "Ann"),
                ("contactAvatarUrl", f"{bait}/avatar.png"),
                ("attachments[name]", "a.png"),
                ("attachments[url]", f"{bait}/a.png"),
                ("attachments[name]", "b.pdf"),
                ("attachments[url]", f"{bait}/b.pdf?x=1"),
            ],
            timeout=10,
        )
        assert first.status_code == 200
        task = requests.post(
            api,
            data={
                "cmd": "getTask",
                "providerId": "sec",
                "chatId": "fetch",
                "planfix_token": PLANFIX_TOKEN,
            },
            timeout=10,
        ).json()["data"]["number"]
        # An operator's reply with attachments goes to the fake chat, which keeps links only.
        reply = requests.post(
            f"{live_server.url}/api/v1/tasks/{task}/replies",
            json={"message": "here", "attachments": [{"name": "c.txt", "url": f"{bait}/c"}]},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        deadline = time.monotonic() + 1.0
        connected: list[object] = []
        while time.monotonic() < deadline:
            try:
                conn, _ = trap.accept()
            except BlockingIOError:
                time.sleep(0.05)
                continue
            connected.append(conn.getpeername())
            conn.close()
        assert connected == [], f"the simulator connected to {bait}: {connected}"
        detail = requests.get(f"{live_server.url}/api/v1/tasks/{task}", timeout=10).json()
        urls = [a["url"] for m in detail["messages"] for a in m.get("attachments", [])]
        assert f"{bait}/a.png" in urls, "attachments are kept as links"
