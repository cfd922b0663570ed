"""Shared fixtures: a fresh app (and store) per test, a test client, a live server, Chromium."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from simulator.runtime import runtime
from simulator.serving.live import LiveServer
from simulator.store import Store
from simulator.web.app import close_app, create_app
from tests.chat_stub import IntegrationStub, stub_server

Report = Callable[[str], None]
_REPORT = pytest.StashKey[list[str]]()
PLANFIX_TOKEN = "303cb962ac59075b964b07152d234b70"
CHAT_TOKEN = "202cb962ac59075b964b07152d234b70"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def app_config() -> dict[str, object]:
    """Overrides for the app under test; a test module may redefine this fixture."""
    return {}


@pytest.fixture
def app(app_config: dict[str, object]) -> Iterator[Flask]:
    """A fresh app on the embedded default with a throw-away database."""
    application = create_app({"testing": True, **app_config})
    yield application
    close_app(application)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Flask's test client for `app`."""
    return app.test_client()


@pytest.fixture
def store(app: Flask) -> Store:
    """The store behind `app`."""
    return runtime(app).store


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """One live server for a whole test module (state carries over between its tests)."""
    live = LiveServer({"testing": True}).start()
    yield live
    live.stop()
    live.check()


@pytest.fixture
def stub() -> Iterator[IntegrationStub]:
    """A stub server playing the other party (an integration, or an external Planfix)."""
    yield from stub_server()


@pytest.fixture
def live_server(app_config: dict[str, object]) -> Iterator[LiveServer]:
    """A real server on a free loopback port; server-side exceptions fail the test."""
    server = LiveServer(app_config).start()
    yield server
    server.stop()
    server.check()


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Report:
    """Record a line for the session summary: counts show in CI even when output is captured."""
    lines = request.config.stash.setdefault(_REPORT, [])
    name = request.node.name

    def add(text: str) -> None:
        lines.append(f"{name}: {text.strip()}")

    return add


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the tests counted (reliability figures) at the end of the run."""
    lines = terminalreporter.config.stash.get(_REPORT, [])
    if lines:
        terminalreporter.section("what the tests counted")
        for line in lines:
            terminalreporter.write_line(line)


def unavailable(reason: str) -> None:
    """Skip a test the machine cannot run; in CI (`CI` set) that is a failure, not a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"this test must run in CI: {reason}")
    pytest.skip(reason)


def sync_playwright_or_fail() -> Any:
    """Playwright's entry point; a declared test dependency, so missing it fails, CI or not."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is not installed: pip install -e '.[test]'")
    return sync_playwright


# Here, not in one browser test module: Playwright's sync API runs once per thread, so every
# module that drives Chromium shares this one session-wide instance.
@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (Playwright's sync API)."""
    sync_playwright = sync_playwright_or_fail()
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
