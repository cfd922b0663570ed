"""The header's integration menu in a real Chromium: long names cut with an ellipsis (the full
name on hover), a bounded width, and deleting an integration from Settings without leaving any
page pointing at it."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.serving.live import LiveServer
from tests.conftest import PLANFIX_TOKEN
from tests.web.test_pages_browser import api, expect

# The browser tab fixtures, shared with the other browser tests.
from tests.web.test_pages_browser import confirms as confirms
from tests.web.test_pages_browser import page as page

pytestmark = pytest.mark.browser

# As long as the names `planfix-sim run` generates, and longer.
LONG = "scenario-a-customer-writes-and-the-operator-answers-with-attachments-3f9a1c7e"
MENU_MAX_PX = 260

MEASURE = """
() => {
  const select = document.querySelector("#integration");
  const style = getComputedStyle(select);
  return {
    width: Math.round(select.getBoundingClientRect().width),
    pick: Math.round(document.querySelector(".integration-pick").getBoundingClientRect().width),
    overflow: style.textOverflow,
    title: select.title,
    titles: [...select.options].map((o) => [o.textContent, o.title]),
  };
}
"""


@pytest.mark.parametrize("path", ["/", "/journal", "/settings"])
def test_a_long_name_is_cut_with_an_ellipsis_and_shown_whole_on_hover(
    page: Any, live_server: LiveServer, path: str
) -> None:
    long = api(live_server, "POST", "/api/v1/integrations", {"name": LONG})
    page.goto(live_server.url + path)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")

    page.select_option("#integration", str(long["id"]))

    found = page.evaluate(MEASURE)
    assert found["width"] <= MENU_MAX_PX, "the menu grows with the name"
    assert found["pick"] <= MENU_MAX_PX + 120, "label and menu together stay bounded"
    assert found["overflow"] == "ellipsis"
    expect(page.locator("#integration")).to_have_attribute("title", LONG)
    found = page.evaluate(MEASURE)
    assert [LONG, LONG] in found["titles"]
    assert all(text == title for text, title in found["titles"] if title)


def test_deleting_from_settings_asks_first_and_the_menu_moves_to_another(
    page: Any, live_server: LiveServer, confirms: list[str]
) -> None:
    doomed = api(live_server, "POST", "/api/v1/integrations", {"name": "doomed"})
    page.goto(live_server.url + "/settings")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.select_option("#integration", str(doomed["id"]))
    expect(page.locator("#howto-token")).to_have_text(doomed["planfix_token"])
    confirms.append("Delete the integration “doomed”")

    page.click(f"#integration-list button[data-delete='{doomed['id']}']")

    expect(page.locator("#toast")).to_have_text("Deleted “doomed”")
    expect(page.locator("#integration-list")).not_to_contain_text("doomed")
    expect(page.locator(f"#integration option[value='{doomed['id']}']")).to_have_count(0)
    expect(page.locator("#integration")).to_have_value("1")
    expect(page.locator("#howto-token")).to_have_text(PLANFIX_TOKEN)
    assert page.evaluate("localStorage.getItem('planfix-sim.integration')") == "1"
    names = [i["name"] for i in api(live_server, "GET", "/api/v1/integrations")]
    assert names == ["default"]


def test_a_declined_confirm_deletes_nothing(browser: Any, live_server: LiveServer) -> None:
    kept = api(live_server, "POST", "/api/v1/integrations", {"name": "kept"})
    # Its own tab: the shared one counts every declined dialog as a failure.
    context = browser.new_context()
    try:
        tab = context.new_page()
        asked: list[str] = []

        def decline(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.dismiss()

        tab.on("dialog", decline)
        tab.goto(live_server.url + "/settings")
        expect(tab.locator("#live")).to_have_attribute("data-state", "live")

        tab.click(f"#integration-list button[data-delete='{kept['id']}']")

        expect(tab.locator("#integration-list")).to_contain_text("kept")
    finally:
        context.close()
    assert [m.split("?")[0] for m in asked] == ["Delete the integration “kept”"]
    assert len(api(live_server, "GET", "/api/v1/integrations")) == 2


def test_a_page_on_an_integration_deleted_elsewhere_moves_to_an_existing_one(
    page: Any, live_server: LiveServer
) -> None:
    doomed = api(live_server, "POST", "/api/v1/integrations", {"name": "doomed"})
    page.goto(live_server.url + "/")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.select_option("#integration", str(doomed["id"]))
    expect(page.locator("#howto-token")).to_have_text(doomed["planfix_token"])

    api(live_server, "DELETE", f"/api/v1/integrations/{doomed['id']}")

    expect(page.locator(f"#integration option[value='{doomed['id']}']")).to_have_count(0)
    expect(page.locator("#integration")).to_have_value("1")
    expect(page.locator("#howto-token")).to_have_text(PLANFIX_TOKEN)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")


def test_the_last_integration_offers_no_delete(page: Any, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/settings")

    button = page.locator("#integration-list button[data-delete='1']")

    expect(button).to_be_disabled()
    expect(button).to_have_attribute("title", "The last integration cannot be deleted")
