"""The sandbox pages without a browser: they render, escape, carry a CSP, refuse cross-site."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from simulator.web.app import templates_dir
from simulator.web.pages import ASSETS, CONTENT_SECURITY_POLICY
from tests.conftest import PLANFIX_TOKEN
from tests.planfix.test_chat_api import new_message, post

PAGES = ["/", "/journal", "/settings"]
HOSTILE = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"


class _Tags(HTMLParser):
    """Collects start tags with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def parse(html: str) -> _Tags:
    """The page's tags, for checks on what the browser would execute."""
    tags = _Tags()
    tags.feed(html)
    return tags


@pytest.mark.parametrize("path", PAGES)
def test_each_page_renders_with_a_strict_content_security_policy(
    client: FlaskClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("path", PAGES)
def test_pages_have_no_inline_script_style_or_handlers(client: FlaskClient, path: str) -> None:
    page = parse(client.get(path).get_data(as_text=True))
    assert page.script_text == [], "inline script would be blocked by the CSP"
    for tag, attrs in page.tags:
        assert "style" not in attrs, f"inline style on <{tag}> is blocked by the CSP"
        handlers = [name for name in attrs if name.startswith("on")]
        assert handlers == [], f"<{tag}> has inline handlers {handlers}"
        if tag == "script":
            assert attrs.get("src", "").startswith("/ui/")


@pytest.mark.parametrize("path", PAGES)
def test_every_asset_a_page_names_is_served_with_its_type(client: FlaskClient, path: str) -> None:
    page = parse(client.get(path).get_data(as_text=True))
    urls = [a["src"] for t, a in page.tags if t == "script"]
    urls += [a["href"] for t, a in page.tags if t == "link" and a.get("rel") == "stylesheet"]
    assert urls
    for url in urls:
        assert url is not None
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Content-Type"] == ASSETS[url.rsplit("/", 1)[1]]


@pytest.mark.parametrize("name", ["base.html", "..%2Fbase.html", "nope.js", "app.css.map"])
def test_the_asset_route_serves_only_its_named_files(client: FlaskClient, name: str) -> None:
    assert client.get(f"/ui/{name}").status_code == 404


# sim.test is a name given to the simulator on purpose (as --allowed-host does).
@pytest.mark.parametrize("app_config", [{"allowed_hosts": ["sim.test"]}])
def test_the_first_page_says_in_one_line_where_to_point_an_integration(
    client: FlaskClient,
) -> None:
    page = client.get("/", base_url="http://sim.test:8080").get_data(as_text=True)
    howto = re.search(r'<p id="howto".*?</p>', page, re.S)
    assert howto is not None
    text = re.sub(r"<[^>]+>", "", howto.group(0))
    assert "http://sim.test:8080/webchat/api" in text
    assert PLANFIX_TOKEN in text
    assert "http://sim.test:8080/fake-chat/webhook" in text
    assert 'data-copy-from="howto-token"' in howto.group(0)


@pytest.mark.parametrize("path", PAGES)
def test_integration_values_are_escaped_in_pages(client: FlaskClient, path: str) -> None:
    # URLs must be http(s): the hostile text rides in the path.
    hostile_url = "http://x.test/" + HOSTILE
    created = client.post("/api/v1/integrations", json={"name": HOSTILE, "url": hostile_url})
    assert created.status_code == 201
    page = client.get(path).get_data(as_text=True)
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not [t for t, a in parse(page).tags if t == "img"]


def test_scripts_build_the_dom_without_html_parsing() -> None:
    sources = {
        name: (Path(templates_dir()) / "ui" / name).read_text(encoding="utf-8")
        for name in ASSETS
        if name.endswith(".js")
    }
    for name, source in sources.items():
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{name} uses {sink}: data must go through textContent"


def test_the_page_script_only_links_http_urls() -> None:
    source = (Path(templates_dir()) / "ui" / "common.js").read_text(encoding="utf-8")
    assert 'url.protocol === "http:" || url.protocol === "https:"' in source


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
    ],
)
def test_cross_site_state_changes_from_a_browser_are_refused(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    post(client, new_message())
    for path in ("/api/v1/tasks/1000/complete", "/api/v1/reset", "/api/v1/integrations"):
        response = client.post(path, json={}, headers=headers)
        assert response.status_code == 403, path
    assert client.get("/api/v1/tasks/1000").get_json()["status"] == "active"


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
        {"Origin": "http://localhost"},
        {},
    ],
)
def test_the_pages_own_requests_and_plain_clients_pass(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    post(client, new_message())
    response = client.post("/api/v1/tasks/1000/complete", json={}, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["status"] == "completed"


@pytest.mark.parametrize("path", PAGES)
def test_every_input_has_a_label(client: FlaskClient, path: str) -> None:
    page = parse(client.get(path).get_data(as_text=True))
    labelled = {a.get("for") for t, a in page.tags if t == "label"}
    for tag, attrs in page.tags:
        if tag in ("input", "select", "textarea") and attrs.get("type") != "hidden":
            assert attrs.get("id") in labelled or attrs.get("aria-label"), (tag, attrs)
