"""Screenshots of the sandbox for the README, from a real run: `python -m tests.make_screenshots`.

Starts a live simulator, seeds a small conversation through the public control API (the same
calls a CI job would make), drives Debian's Chromium with Playwright and writes PNGs into
`tests/screenshots/`: the sandbox (operator beside customer), each side alone, and the journal.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from simulator.clients.http import request_json
from simulator.serving.live import LiveServer
from tests.web.test_pages_browser import CHROMIUM, CHROMIUM_ARGS

OUT = Path(__file__).resolve().parent / "screenshots"
ARGS = [*CHROMIUM_ARGS, "--hide-scrollbars"]


def call(server: LiveServer, method: str, path: str, body: Any = None) -> Any:
    """One control-API call; a failure stops the script with the server's answer."""
    answer = request_json(method, server.url + path, body)
    if answer.status is None or answer.status >= 300:
        raise SystemExit(f"{method} {path}: {answer.status} {answer.error or answer.text}")
    return answer.json_or_none()


def customer(server: LiveServer, chat: str, name: str, text: str, **extra: Any) -> None:
    """The fake chat's customer writes to Planfix."""
    body = {"chatId": chat, "contactId": chat, "contactName": name, "message": text, **extra}
    call(server, "POST", "/api/v1/chat/messages", body)


def task_of(server: LiveServer, chat: str) -> int:
    """The number of the task holding `chat`."""
    for task in call(server, "GET", "/api/v1/tasks"):
        if task["chat_id"] == chat:
            return int(task["number"])
    raise SystemExit(f"no task for chat {chat}")


def seed(server: LiveServer) -> int:
    """A short, realistic afternoon: three customers, replies, one failed delivery."""
    call(
        server, "PATCH", "/api/v1/integrations/default", {"task_fields": ["order_id", "utm_source"]}
    )
    call(
        server,
        "POST",
        "/api/v1/employees",
        {"email": "maria@example.com", "name": "Maria", "last_name": "Lopez"},
    )
    customer(server, "tg-2051", "Bob", "Hi, do you ship to Canada?", contactLastName="Miller")
    bob = task_of(server, "tg-2051")
    # The fake chat refuses the next delivery: the operator sees why it failed.
    call(
        server,
        "PUT",
        "/api/v1/integrations/default/faults",
        {"fake_chat": {"status": 500, "count": 1}},
    )
    call(
        server,
        "POST",
        f"/api/v1/tasks/{bob}/replies",
        {"message": "Yes! Canada takes 5 to 7 business days.", "employee": "maria@example.com"},
    )
    customer(
        server,
        "wa-1001",
        "Alice",
        "Hi! I ordered the blue sneakers on Monday. Any news?",
        contactLastName="Johnson",
        contactPhone="+1 555 0100",
        title="Order 4711: delivery",
        data={"order_id": "4711", "utm_source": "newsletter"},
    )
    alice = task_of(server, "wa-1001")
    call(
        server,
        "POST",
        f"/api/v1/tasks/{alice}/replies",
        {
            "message": "Hi Alice! It left our warehouse this morning. Tracking is attached.",
            "attachments": [{"name": "tracking.pdf", "url": "https://example.com/t/4711.pdf"}],
        },
    )
    customer(server, "wa-1001", "Alice", "Great, thank you!", contactLastName="Johnson")
    call(
        server,
        "POST",
        f"/api/v1/tasks/{alice}/replies",
        {"message": "You're welcome. Enjoy the sneakers!", "employee": "maria@example.com"},
    )
    customer(
        server, "vb-77", "Carol", "Can I still change the delivery address?", contactLastName="Chen"
    )
    return alice


def shoot(server: LiveServer, alice: int) -> list[Path]:
    """Open the pages in Chromium and save the PNGs."""
    from playwright.sync_api import expect, sync_playwright

    OUT.mkdir(exist_ok=True)
    written: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
        page.goto(f"{server.url}/?task={alice}")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        page.select_option("#chat-select", "wa-1001")
        expect(page.locator("#chat-thread .msg.theirs").last).to_contain_text("Enjoy")
        expect(page.locator("#thread .msg-reply").last).to_contain_text("✓")
        page.fill("#reply-text", "Anything else I can help with?")
        page.wait_for_timeout(300)
        for name, target in (
            ("sandbox", page),
            ("customer", page.locator(".panel.customer")),
        ):
            path = OUT / f"{name}.png"
            target.screenshot(path=str(path))
            written.append(path)
        # The operator's view of the task whose reply the fake chat refused.
        page.locator(".task-item", has_text="Bob").click()
        expect(page.locator("#thread .delivery-failed .reason")).to_contain_text("500")
        page.fill("#reply-text", "")
        path = OUT / "operator.png"
        page.locator(".panel.operator").screenshot(path=str(path))
        written.append(path)
        page.goto(f"{server.url}/journal")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        failed = page.locator("#entries tr[data-direction=to_chat]").filter(has_text="500")
        failed.first.click()
        page.locator("#entries tr input[type=checkbox]").nth(1).check()
        page.locator("#entries tr input[type=checkbox]").nth(2).check()
        page.wait_for_timeout(200)
        path = OUT / "journal.png"
        page.screenshot(path=str(path))
        written.append(path)
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    """Seed, shoot, print where the files are."""
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    with LiveServer() as server:
        alice = seed(server)
        for path in shoot(server, alice):
            print(path)
        server.check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
