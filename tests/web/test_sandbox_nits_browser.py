"""Sandbox nits in a real Chromium: text fits its card, a dead server is named, one token chip,
the customer pane says when replies go somewhere other than the fake chat, and a slow answer
about a task the operator left never replaces the task they picked."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.clients.http import request_json
from simulator.serving.live import LiveServer
from tests.conftest import PLANFIX_TOKEN
from tests.served import Served
from tests.web.test_pages_browser import XSS, api, expect

# The browser tab fixtures, shared with the other browser tests.
from tests.web.test_pages_browser import confirms as confirms
from tests.web.test_pages_browser import page as page

pytestmark = pytest.mark.browser

WIDE = {"width": 1400, "height": 900}
# A webhook URL with its secret in the query, as integrations protect theirs.
SECRET = "hook-secret-0123456789"
ELSEWHERE = f"http://127.0.0.1:9/planfix/webhook?secret={SECRET}&lang=en"
ELSEWHERE_MASKED = "http://127.0.0.1:9/planfix/webhook?secret=hook\u20266789&lang=en"
HOSTILE = f"http://x.test/{XSS}?key={SECRET}"
HOSTILE_MASKED = f"http://x.test/{XSS}?key=hook\u20266789"


# Measured in one script run: the page re-renders the task on live events, and one run never
# sees a half-drawn card.
MEASURE = """
(card) => {
  const out = (el) => el.scrollWidth - el.clientWidth;
  const box = (el) => el.getBoundingClientRect().right;
  const q = (s) => document.querySelector(s);
  return {
    fields: out(q("#task-fields")),
    card: out(q(card)),
    meta: out(q(".task-meta")),
    beyond: Math.max(0, Math.round(box(q("#task-fields .hint")) - box(q(card)))),
  };
}
"""


def test_the_empty_task_fields_hint_fits_its_card_at_1400_px(
    page: Any, live_server: LiveServer
) -> None:
    api(
        live_server,
        "POST",
        "/api/v1/chat/messages",
        {"chatId": "c-1", "contactId": "c-1", "contactName": "Ann", "message": "hello"},
    )
    page.set_viewport_size(WIDE)
    page.goto(live_server.url + "/")
    hint = page.locator("#task-fields .hint")
    expect(hint).to_have_text("none yet: data_<field> fills the fields named in Settings")
    sizes = page.evaluate(MEASURE, "section.card[aria-label='Task fields']")
    assert sizes == {"fields": 0, "card": 0, "meta": 0, "beyond": 0}, "pixels out sideways"


def test_a_send_with_the_server_down_names_the_simulator_not_failed_to_fetch(page: Any) -> None:
    served = Served()
    try:
        page.goto(served.url + "/")
        expect(page.locator("#live")).to_have_attribute("data-state", "live")
        page.fill("#chat-text", "is anyone there?")
    finally:
        served.kill()
    page.press("#chat-text", "Enter")
    said = f"The simulator is not answering at {served.url}: is `planfix-sim serve` running?"
    expect(page.locator("#toast")).to_have_text(said)
    expect(page.locator("#chat-last")).to_have_text(said)
    assert "Failed to fetch" not in (page.text_content("body") or "")
    # Nothing typed is lost: the message waits for the next try.
    expect(page.locator("#chat-text")).to_have_value("is anyone there?")


def test_the_token_label_and_value_are_one_chip_and_copy_gives_the_value(
    page: Any, live_server: LiveServer
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(live_server.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    chip = page.locator("#howto code", has_text="planfix_token=")
    expect(chip).to_have_count(1)
    expect(chip).to_have_text(f"planfix_token={PLANFIX_TOKEN}")
    page.click("#howto [data-copy-from=howto-token]")
    expect(page.locator("#toast")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == PLANFIX_TOKEN


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("{base_url}/fake-chat/webhook", None),
        (ELSEWHERE, ELSEWHERE_MASKED),
        (HOSTILE, HOSTILE_MASKED),
    ],
    ids=["fake chat", "elsewhere", "hostile"],
)
def test_the_customer_pane_says_where_replies_go_when_not_the_fake_chat(
    page: Any, live_server: LiveServer, url: str, shown: str | None
) -> None:
    created = api(live_server, "POST", "/api/v1/integrations", {"name": "bot", "url": url})
    page.goto(live_server.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.select_option("#integration", str(created["id"]))
    notice = page.locator(".panel.customer #chat-elsewhere")
    if shown is None:
        expect(notice).to_be_hidden()
        return
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(f"Replies now go to {shown}")
    expect(notice).to_contain_text("the fake chat will not receive them")
    assert SECRET not in (page.locator(".panel.customer").text_content() or "")
    assert page.locator("main img, main svg, main script").count() == 0


def test_the_notice_follows_the_integration_live(page: Any, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    notice = page.locator("#chat-elsewhere")
    expect(notice).to_be_hidden()
    api(live_server, "PATCH", "/api/v1/integrations/default", {"url": ELSEWHERE})
    expect(notice).to_contain_text(ELSEWHERE_MASKED)
    api(
        live_server,
        "PATCH",
        "/api/v1/integrations/default",
        {"url": "{base_url}/fake-chat/webhook"},
    )
    expect(notice).to_be_hidden()


def test_the_howto_line_masks_the_secret_in_the_reply_url(
    page: Any, live_server: LiveServer
) -> None:
    api(live_server, "PATCH", "/api/v1/integrations/default", {"url": ELSEWHERE})
    served = request_json("GET", live_server.url + "/")
    assert SECRET not in served.text
    page.goto(live_server.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#howto-url")).to_have_text(ELSEWHERE_MASKED)
    assert SECRET not in (page.text_content("body") or "")


# Holds every GET of one task until the test lets it through: a slow answer about the task the
# operator just left, arriving after the one they picked.
HOLD_TASK = """
(() => {
  const held = [];
  const real = window.fetch.bind(window);
  window.__release = async () => {
    window.__holding = false;
    await Promise.all(held.splice(0).map((go) => go()));
    // Let the page's continuations (text(), JSON, render) run after the answers arrive.
    for (let i = 0; i < 3; i += 1) await new Promise((r) => setTimeout(r, 0));
  };
  window.__holding = true;
  window.fetch = (input, init) => {
    if (!window.__holding || !String(input).endsWith("/api/v1/tasks/%d")) return real(input, init);
    return new Promise((resolve) => {
      held.push(async () => {
        const answer = await real(input, init);
        const body = await answer.text();
        resolve(new Response(body, { status: answer.status, headers: answer.headers }));
      });
    });
  };
})();
"""


def test_a_slow_answer_about_the_task_left_does_not_replace_the_task_picked(
    page: Any, live_server: LiveServer
) -> None:
    for chat, name in (("c-1", "Ann"), ("c-2", "Ben")):
        api(
            live_server,
            "POST",
            "/api/v1/chat/messages",
            {"chatId": chat, "contactId": chat, "contactName": name, "message": f"hi from {name}"},
        )
    page.add_init_script(HOLD_TASK % 1001)  # Ben's task, the one the page opens first
    page.goto(live_server.url + "/")
    expect(page.locator(".task-item.current")).to_contain_text("Ben")
    page.locator(".task-item", has_text="Ann").click()
    expect(page.locator("#thread")).to_contain_text("hi from Ann")
    page.evaluate("window.__release()")
    expect(page.locator("#thread")).to_contain_text("hi from Ann")
    expect(page.locator("#task-title")).to_contain_text("Ann")
