"""The sandbox in a real Chromium: a conversation end to end, live, hostile input inert.

Runs Debian's Chromium through Playwright. A missing playwright package (a declared test
dependency) fails the run; a missing browser fails it in CI (env CI set) and skips elsewhere.
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.clients.http import post_form, request_json
from simulator.serving.live import LiveServer

# CHROMIUM and CHROMIUM_ARGS stay importable from here (make_screenshots.py uses them).
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, PLANFIX_TOKEN  # noqa: F401

pytestmark = pytest.mark.browser

TIMEOUT_MS = 10_000
XSS = "<img src=x onerror=alert(1)><script>alert(2)</script>\"'><svg onload=alert(3)>"
JS_URL = "javascript:alert(4)"


@pytest.fixture
def confirms() -> list[str]:
    """Confirmations the test expects the page to ask for (accepted); other dialogs fail."""
    return []


@pytest.fixture
def page(browser: Any, confirms: list[str], live_server: LiveServer) -> Iterator[Any]:
    """A fresh tab at 1280 px; an unexpected JavaScript dialog or page error fails the test.

    It depends on `live_server` so that the tab (and its event stream) closes before the server
    stops: a stream still open at shutdown would outlive the server in a daemon thread.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    dialogs: list[str] = []
    errors: list[str] = []

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "confirm" and any(c in dialog.message for c in confirms):
            dialog.accept()
            return
        dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    yield tab
    context.close()
    assert dialogs == [], f"a script ran: dialogs {dialogs}"
    assert errors == [], f"page errors: {errors}"


def expect(target: Any) -> Any:
    """Playwright's auto-waiting assertions."""
    from playwright.sync_api import expect as _expect

    return _expect(target)


def api(server: LiveServer, method: str, path: str, body: Any = None) -> Any:
    """Call the control API like a test or CI job would."""
    answer = request_json(method, server.url + path, body)
    assert answer.status is not None
    assert answer.status < 300, (path, answer.status, answer.text)
    return answer.json_or_none()


def mark_document(tab: Any) -> None:
    """Tag the loaded document: if the page reloads, the tag is gone."""
    tab.evaluate("window.__no_reload = 'still here'")


def assert_not_reloaded(tab: Any) -> None:
    """The document tagged by mark_document is still the one shown."""
    assert tab.evaluate("window.__no_reload") == "still here"


def test_a_conversation_end_to_end_live_then_exported(page: Any, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    mark_document(page)

    # The customer writes; the operator's list and thread show it without a reload.
    page.fill("#chat-text", "Hello, where is my order?")
    page.press("#chat-text", "Enter")
    task = page.locator("#task-list .task-item").first
    expect(task).to_contain_text("Hello, where is my order?")
    expect(page.locator("#thread .msg-customer")).to_contain_text("Hello, where is my order?")
    assert_not_reloaded(page)

    # The operator replies; the customer's side receives it through the fake chat.
    page.fill("#reply-text", "It ships today.")
    page.press("#reply-text", "Enter")
    reply = page.locator("#thread .msg-reply")
    expect(reply).to_contain_text("It ships today.")
    expect(reply.locator(".delivery")).to_contain_text("delivered")
    expect(page.locator("#chat-thread .msg.theirs")).to_contain_text("It ships today.")
    expect(page.locator("#chat-thread .msg.mine")).to_contain_text("accepted by Planfix")
    assert_not_reloaded(page)

    # The journal shows both directions; the selection exports as a scenario.
    page.goto(live_server.url + "/journal")
    rows = page.locator("#entries tr")
    expect(page.locator('#entries tr[data-direction="to_planfix"]').first).to_be_visible()
    expect(page.locator('#entries tr[data-direction="to_chat"]').first).to_be_visible()
    page.locator('#entries tr[data-direction="to_chat"]').first.click()
    expect(page.locator("#detail")).to_contain_text("It ships today.")
    page.check("#select-all")
    expect(page.locator("#export")).to_be_enabled()
    with page.expect_download() as download_info:
        page.click("#export")
    path = download_info.value.path()
    assert download_info.value.suggested_filename.endswith(".yaml")
    text = Path(path).read_text(encoding="utf-8")
    scenario = yaml.safe_load(text)
    assert isinstance(scenario, dict)
    assert "Hello, where is my order?" in text
    assert rows.count() >= 2


def test_the_journal_updates_live_and_filters(page: Any, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/journal")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#journal-empty")).to_be_visible()
    mark_document(page)
    api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {"chatId": "c-9", "contactId": "c-9", "contactName": "Bo", "message": "ping"},
    )
    api(live_server, "POST", "/api/v1/chat/commands", {"cmd": "getTask", "chatId": "c-9"})
    api(live_server, "POST", "/api/v1/chat/commands", {"cmd": "getTask", "chatId": "nope"})
    rows = page.locator("#entries tr")
    expect(rows).to_have_count(3)
    page.select_option("#f-cmd", "getTask")
    expect(rows).to_have_count(2)
    page.fill("#f-status", "400")
    expect(rows).to_have_count(1)
    expect(rows.locator(".code")).to_have_text("400")
    page.click("#entries tr")
    expect(page.locator("#detail pre.body").last).to_contain_text("task not found")
    page.select_option("#f-direction", "to_chat")
    expect(rows).to_have_count(0)
    expect(page.locator("#journal-empty")).to_be_visible()
    assert_not_reloaded(page)


def test_hostile_values_in_every_field_stay_inert_text(page: Any, live_server: LiveServer) -> None:
    api(live_server, "POST", "/api/v1/employees", {"email": "x@example.com", "name": XSS})
    api(live_server, "PATCH", "/api/v1/integrations/default", {"task_fields": ["note", XSS]})
    page.goto(live_server.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")

    # Every field of the customer's chat and message carries the payload.
    page.click("#chat-new-toggle")
    for field in (
        "#new-chat-id",
        "#new-contact-id",
        "#new-contact-name",
        "#new-contact-last",
        "#new-contact-phone",
        "#new-contact-email",
        "#new-channel",
    ):
        page.fill(field, XSS)
    page.click("#chat-new button[type=submit]")
    page.click("#chat-form summary")
    page.fill("#chat-title", XSS)
    page.click("#chat-form .add-attachment")
    page.fill("#chat-attachments .pair-a", XSS)
    page.fill("#chat-attachments .pair-b", JS_URL)
    page.click("#chat-add-data")
    page.fill("#chat-data .pair-a", "note")
    page.fill("#chat-data .pair-b", XSS)
    page.fill("#chat-text", XSS)
    page.press("#chat-text", "Enter")

    thread = page.locator("#thread")
    expect(thread.locator(".msg-customer .text")).to_have_text(XSS)
    expect(page.locator("#task-title")).to_have_text(XSS)
    expect(page.locator("#contact-card")).to_contain_text(XSS)
    expect(page.locator("#task-fields")).to_contain_text(XSS)
    expect(page.locator("#task-list")).to_contain_text(XSS)

    # The operator answers as the hostile employee, with a javascript: attachment.
    page.select_option("#reply-employee", "x@example.com")
    page.click("#reply-form .add-attachment")
    page.fill("#reply-attachments .pair-a", XSS)
    page.fill("#reply-attachments .pair-b", JS_URL)
    page.fill("#reply-text", XSS)
    page.press("#reply-text", "Enter")
    expect(thread.locator(".msg-reply .text")).to_have_text(XSS)
    expect(thread.locator(".msg-reply .author")).to_have_text(re.compile(re.escape(XSS[:20])))
    expect(page.locator("#chat-thread .msg.theirs .text")).to_have_text(XSS)

    # Nothing was parsed as markup, and no javascript: URL became a link.
    for tab_path in ("/", "/journal", "/settings"):
        if tab_path != "/":
            page.goto(live_server.url + tab_path)
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
        if tab_path == "/journal":
            page.locator('#entries tr[data-direction="to_chat"]').first.click()
            expect(page.locator("#detail")).to_contain_text(XSS)
            expect(page.locator("#entries")).to_contain_text(XSS)  # the chatId column
        assert page.locator("main img, main svg, main script").count() == 0, tab_path
        assert page.locator('a[href^="javascript"]').count() == 0, tab_path


def test_attachments_link_only_http_urls(page: Any, live_server: LiveServer) -> None:
    api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {
            "chatId": "c-1",
            "contactId": "c-1",
            "contactName": "Ann",
            "message": "files",
            "attachments": [
                {"name": "photo.png", "url": "https://example.com/photo.png"},
                {"name": "evil", "url": JS_URL},
                {"name": "data", "url": "data:text/html,<script>alert(5)</script>"},
            ],
        },
    )
    page.goto(live_server.url + "/")
    message = page.locator("#thread .msg-customer")
    expect(message).to_contain_text("files")
    links = message.locator("a.attachment")
    expect(links).to_have_count(1)
    expect(links).to_have_attribute("href", "https://example.com/photo.png")
    expect(links).to_have_attribute("rel", "noopener noreferrer")
    expect(message.locator(".attachment.inert")).to_have_count(2)
    expect(message.locator(".attachment.inert").first).to_contain_text(JS_URL)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_failed_delivery_shows_its_reason(page: Any, live_server: LiveServer) -> None:
    broken = api(
        live_server,
        "POST",
        "/api/v1/integrations",
        {
            "name": "broken",
            "url": f"http://127.0.0.1:{_closed_port()}/webhook",
        },
    )
    answer = post_form(
        live_server.url + "/webchat/api",
        [
            ("cmd", "newMessage"),
            ("providerId", "p"),
            ("chatId", "c-7"),
            ("planfix_token", broken["planfix_token"]),
            ("message", "Anyone there?"),
            ("contactId", "c-7"),
            ("contactName", "Dana"),
        ],
    )
    assert answer.status == 200
    page.goto(live_server.url + "/")
    page.select_option("#integration", str(broken["id"]))
    expect(page.locator("#thread .msg-customer")).to_contain_text("Anyone there?")
    page.fill("#reply-text", "Yes, here")
    page.press("#reply-text", "Enter")
    delivery = page.locator("#thread .msg-reply .delivery")
    expect(delivery).to_have_class(re.compile("delivery-failed"))
    expect(delivery.locator(".state")).to_contain_text("failed")
    expect(delivery.locator(".reason")).to_contain_text(re.compile("refused|connect", re.I))

    # Once the integration listens (here: the fake chat), Retry delivers the same message.
    api(
        live_server,
        "PATCH",
        f"/api/v1/integrations/{broken['id']}",
        {"url": "{base_url}/fake-chat/webhook"},
    )
    delivery.locator("button.retry").click()
    expect(delivery).to_have_class(re.compile("delivery-delivered"))
    expect(delivery.locator(".reason")).to_have_count(0)


def test_a_narrow_window_stacks_operator_and_customer(page: Any, live_server: LiveServer) -> None:
    page.set_viewport_size({"width": 420, "height": 900})
    page.goto(live_server.url + "/")
    operator = page.locator(".panel.operator").bounding_box()
    customer = page.locator(".panel.customer").bounding_box()
    assert operator is not None
    assert customer is not None
    assert customer["y"] >= operator["y"] + operator["height"] - 1
    assert operator["width"] <= 420
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 420, "no horizontal scrolling on a narrow window"


def test_the_operator_sees_unread_tasks_and_completes_and_reopens(
    page: Any, live_server: LiveServer
) -> None:
    for chat, name in (("c-1", "Ann"), ("c-2", "Ben")):
        api(
            live_server,
            "POST",
            "/api/v1/chat/messages",
            {"chatId": chat, "contactId": chat, "contactName": name, "message": f"hi from {name}"},
        )
    page.goto(live_server.url + "/")
    current = page.locator(".task-item.current")
    expect(current).to_contain_text("Ben")
    other = page.locator(".task-item", has_text="Ann")
    expect(other).to_have_class(re.compile("unread"))
    expect(other.locator(".unread-dot")).to_have_text("1")
    expect(current.locator(".unread-dot")).to_have_count(0)
    expect(other).to_have_attribute("href", "/?task=1000")  # a real link: keyboard, new tab

    page.click("#task-complete")
    expect(page.locator("#task-status")).to_have_text("completed")
    expect(current.locator(".badge")).to_have_text("completed")
    expect(page.locator("#task-reopen")).to_be_visible()
    page.click("#task-reopen")
    expect(page.locator("#task-status")).to_have_text("active")
    expect(page.locator("#task-complete")).to_be_visible()

    other.click()
    expect(page.locator("#thread")).to_contain_text("hi from Ann")
    expect(page.locator(".task-item", has_text="Ann").locator(".unread-dot")).to_have_count(0)
    # Opening the task tells the server it was read (POST /read after the thread renders).
    page.wait_for_function(
        "fetch('/api/v1/tasks/1000').then(r => r.json()).then(t => t.unread === 0)",
        polling=100,
    )


def test_an_echo_shows_its_author_beside_the_customer(page: Any, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.fill("#chat-text", "I need help")
    page.press("#chat-text", "Enter")
    expect(page.locator("#thread .msg-customer")).to_contain_text("I need help")
    page.click("#chat-form summary")
    page.check("#chat-echo")
    page.fill("#chat-user-email", "peter@example.com")
    page.fill("#chat-text", "Our manager answered in the chat app")
    page.press("#chat-text", "Enter")
    echo = page.locator("#thread .msg-echo")
    expect(echo.locator(".text")).to_have_text("Our manager answered in the chat app")
    expect(echo.locator(".author")).to_have_text("Peter Peterson")
    expect(echo.locator(".kind")).to_have_text("echo")
    expect(page.locator("#chat-thread .msg-echo")).to_contain_text("business (echo)")


def test_write_first_message_opens_a_chat_through_the_integration(
    page: Any, live_server: LiveServer
) -> None:
    page.goto(live_server.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.click("#first-open")
    page.fill("#first-phone", "+15550199")
    page.fill("#first-text", "Your order is ready for pickup")
    page.click("#first-form button[type=submit]")
    first = page.locator("#thread .msg-first")
    expect(first).to_contain_text("Your order is ready for pickup")
    expect(first.locator(".delivery")).to_contain_text("delivered")
    expect(page.locator("#contact-card")).to_contain_text("+15550199")
    chats = api(live_server, "GET", "/api/v1/chat/chats")
    assert [c["contactPhone"] for c in chats] == ["+15550199"]
    expect(page.locator("#chat-select option", has_text=chats[0]["chatId"])).to_have_count(1)


def test_a_lost_stream_reconnects_and_catches_up(page: Any, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    mark_document(page)
    # Cut the stream: the server's connection is dropped and new ones fail for a while.
    page.route("**/api/v1/events*", lambda route: route.fulfill(status=503, body="down"))
    page.evaluate("Sim.live.connect()")
    expect(page.locator("#live")).to_have_attribute("data-state", "down")
    api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {
            "chatId": "c-5",
            "contactId": "c-5",
            "contactName": "Eve",
            "message": "while you were away",
        },
    )
    page.unroute("**/api/v1/events*")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#task-list")).to_contain_text("while you were away")
    assert_not_reloaded(page)


def test_copy_as_curl_replays_the_exchange(page: Any, live_server: LiveServer) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {
            "chatId": "c-3",
            "contactId": "c-3",
            "contactName": "Cy",
            "message": 'it\'s "quoted" & $HOME',
        },
    )
    page.goto(live_server.url + "/journal")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    rows = page.locator("#entries tr")
    expect(rows).to_have_count(1)
    rows.first.click()
    # The page shows tokens masked (screenshots, shared screens); the copied command has them.
    expect(page.locator("#detail")).to_contain_text("303c\u20264b70")
    expect(page.locator("#detail")).not_to_contain_text(PLANFIX_TOKEN)
    page.click("#copy-curl")
    expect(page.locator("#toast")).to_have_text("Copied")
    command = page.evaluate("navigator.clipboard.readText()")
    assert command.startswith("curl ")
    assert f"planfix_token={PLANFIX_TOKEN}" in command
    done = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    expect(rows).to_have_count(2)
    replayed = api(live_server, "GET", "/api/v1/journal")
    assert replayed[1]["form"] == replayed[0]["form"]
    assert replayed[1]["status"] == 200


def test_settings_create_an_integration_inject_a_fault_and_reset(
    page: Any, live_server: LiveServer, confirms: list[str]
) -> None:
    page.goto(live_server.url + "/settings")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.fill("#i-name", "shop-bot")
    page.fill("#i-task-fields", "order_id, utm_source")
    page.click("#integration-save")
    expect(page.locator("#integration-list")).to_contain_text("shop-bot")
    created = api(live_server, "GET", "/api/v1/integrations/shop-bot")
    assert created["task_fields"] == ["order_id", "utm_source"]
    expect(page.locator("#integration option", has_text="shop-bot")).to_have_count(1)

    expect(page.locator("#integration")).to_have_value("1")  # faults of "default"
    expect(page.locator("#faults-form")).to_have_attribute("data-integration", "1")
    page.select_option("#fake_chat-status", "503")
    page.fill("#fake_chat-count", "1")
    page.click("#faults-form button[type=submit]")
    expect(page.locator("#faults-current")).to_contain_text("503")

    api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {"chatId": "c-8", "contactId": "c-8", "contactName": "Flo", "message": "hello"},
    )
    page.goto(live_server.url + "/")
    page.fill("#reply-text", "hi Flo")
    page.press("#reply-text", "Enter")
    expect(page.locator("#thread .msg-reply .reason")).to_contain_text("503")

    page.goto(live_server.url + "/settings")
    confirms.append("Forget everything")
    page.click("#reset-all")
    expect(page.locator("#toast")).to_contain_text("reset")
    assert api(live_server, "GET", "/api/v1/tasks") == []


def test_with_an_admin_token_one_visit_unlocks_the_whole_sandbox(page: Any) -> None:
    with LiveServer({"admin_token": "s3cret-admin"}) as server:
        page.goto(server.url + "/")
        assert "admin token" in (page.text_content("body") or "").lower()
        page.goto(server.url + "/?admin_token=s3cret-admin")
        assert "admin_token" not in page.url
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        page.fill("#chat-text", "behind the guard")
        page.press("#chat-text", "Enter")
        expect(page.locator("#thread .msg-customer")).to_contain_text("behind the guard")
        page.fill("#reply-text", "still live")
        page.press("#reply-text", "Enter")
        expect(page.locator("#chat-thread .msg.theirs")).to_contain_text("still live")
        page.goto(server.url + "/journal")
        expect(page.locator('#entries tr[data-direction="to_chat"]')).to_have_count(1)
        page.goto("about:blank")  # close the event stream before the server stops
        server.check()
