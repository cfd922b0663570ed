""" "Copy as curl" in a real Chromium: hostile methods, paths and field names stay literal.

Hostile requests go over raw HTTP to `planfix-sim serve` (gunicorn accepts a quote in a method:
it is an RFC 9110 token character). Each journal entry is copied as curl from the page, and the
copy runs in bash with a stand-in `curl` that only records its argv: nothing else may run, and
every hostile value must arrive as one literal argument.
"""

from __future__ import annotations

import itertools
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import requests

from tests.conftest import PLANFIX_TOKEN
from tests.served import Served, raw_exchange
from tests.web.test_pages_browser import expect

pytestmark = pytest.mark.browser

# A method the shell would end a quote with, run commands after, pipe or expand.
HOSTILE_METHODS = ("XX'", "A&B", "A|B", "A`B`C", "$HOME", "X'$HOME'")
# What follows the path: the query string, journaled as sent.
HOSTILE_QUERIES = (
    "?;touch${IFS}pwned;'",
    "?$(touch${IFS}pwned)",
    "?`touch${IFS}pwned`",
    "?a'b\"c\\d;touch${IFS}pwned",
)
HOSTILE_FIELDS = (
    ("x'$(touch pwned)'", "$(touch pwned)"),
    ("@pwned", "'; touch pwned; '"),
    ("k@/etc/hostname", "@/etc/hostname"),
    ("a=b", "c=d&e=f"),
    ("semi;touch pwned", "`touch pwned`"),
    ("line\nbreak", "two\nlines\r\n"),
    ("", "empty name"),
    ("-o", "pwned"),
    ("--data-raw", "--url"),
    ("attachments[name]", "a b+c%20"),
)
STAND_IN = """#!/bin/sh
# A stand-in curl: records its argv (NUL-separated), one file per call, and does nothing else.
log=$(mktemp "$CURL_CALLS/call.XXXXXX")
printf '%s\\0' "$@" > "$log"
"""
CAPTURE_CLIPBOARD = """
window.__copied = [];
Object.defineProperty(navigator, "clipboard", {
  value: { writeText: async (text) => { window.__copied.push(text); } },
});
"""


@pytest.fixture
def served() -> Iterator[Served]:
    """`planfix-sim serve` (gunicorn, the default)."""
    server = Served()
    yield server
    assert server.stop() == 0
    assert "Traceback" not in server.stderr, server.stderr


@pytest.fixture
def tab(browser: Any, served: Served) -> Iterator[Any]:
    """A tab whose clipboard writes are kept in `window.__copied`; page errors fail the test."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.add_init_script(CAPTURE_CLIPBOARD)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert errors == []


def _journal(served: Served) -> list[dict[str, Any]]:
    got = requests.get(served.url + "/api/v1/journal?reveal=1&limit=500", timeout=30)
    assert got.status_code == 200
    entries: list[dict[str, Any]] = got.json()
    return entries


def _copy_each(tab: Any, served: Served, entries: list[dict[str, Any]]) -> list[str]:
    """Open the journal, copy every entry as curl, return the copies in entry order."""
    tab.goto(served.url + "/journal")
    expect(tab.locator("#entries tr")).to_have_count(len(_journal(served)))
    for n, entry in enumerate(entries, 1):
        tab.locator(f'#entries tr[data-entry="{entry["id"]}"]').click()
        tab.click("#copy-curl")
        for _ in range(100):  # the copy fetches the revealed entry first
            if tab.evaluate("window.__copied.length") == n:
                break
            tab.wait_for_timeout(50)
    copies: list[str] = tab.evaluate("window.__copied")
    return copies


def _run_with_stand_in(command: str, where: Path) -> tuple[list[list[str]], Path]:
    """Run `command` in bash in a fresh directory with a stand-in curl; its calls' argv."""
    bin_dir, calls, cwd = where / "bin", where / "calls", where / "cwd"
    for folder in (bin_dir, calls, cwd):
        folder.mkdir(parents=True)
    curl = bin_dir / "curl"
    curl.write_text(STAND_IN)
    curl.chmod(curl.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CURL_CALLS": str(calls), "HOME": str(cwd)}
    done = subprocess.run(
        ["/bin/bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, ""), command
    argvs = [p.read_bytes().split(b"\0")[:-1] for p in sorted(calls.iterdir())]
    return [[a.decode() for a in argv] for argv in argvs], cwd


def _form_of(argv: list[str]) -> list[list[str]]:
    """The form curl would send for these arguments (no `@file` reads: that would fail)."""
    form = []
    for option, value in itertools.pairwise(argv):
        if option == "--data-urlencode":
            # curl reads a file for `name@file`: the name part must never hold a raw '@'.
            name, eq, content = value.partition("=")
            assert eq, value
            assert "@" not in name, value
            form.append([unquote_plus(name), content])
        elif option == "--data-raw":
            name, _, content = value.partition("=")
            form.append([unquote_plus(name), unquote_plus(content)])
    return form


def _after(argv: list[str], option: str) -> str:
    assert argv.count(option) == 1, argv
    return argv[argv.index(option) + 1]


def _hostile_traffic(served: Served) -> None:
    for method in HOSTILE_METHODS:
        for query in HOSTILE_QUERIES:
            request = (
                f"{method} /webchat/api{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            assert b" 405 " in raw_exchange(served.port, request.encode()).split(b"\r\n")[0]
    form = [
        ("cmd", "getTask"),
        ("providerId", "p"),
        ("chatId", "c"),
        ("planfix_token", PLANFIX_TOKEN),
        *HOSTILE_FIELDS,
    ]
    answer = requests.post(served.api + HOSTILE_QUERIES[0], data=form, timeout=30)
    assert answer.status_code == 400


def test_copy_as_curl_quotes_every_hostile_method_path_and_field(
    tab: Any, served: Served, tmp_path: Path
) -> None:
    _hostile_traffic(served)
    entries = _journal(served)
    assert len(entries) == len(HOSTILE_METHODS) * len(HOSTILE_QUERIES) + 1
    copies = _copy_each(tab, served, entries)
    for n, (entry, command) in enumerate(zip(entries, copies, strict=True)):
        argvs, cwd = _run_with_stand_in(command, tmp_path / f"run-{n}")
        assert len(argvs) == 1, (command, argvs)  # curl ran once, and nothing else ran
        assert list(cwd.iterdir()) == [], command
        [argv] = argvs
        assert _after(argv, "-X") == entry["method"]
        assert _after(argv, "--url") == served.url + entry["url"]
        assert _form_of(argv) == entry["form"]
    assert not list(Path.cwd().glob("pwned*"))
    assert not (Path.home() / "pwned").exists()


def test_a_copied_command_replays_hostile_field_names_with_the_real_curl(
    tab: Any, served: Served, tmp_path: Path
) -> None:
    assert shutil.which("curl"), "curl is required: apt-get install curl"
    _hostile_traffic(served)
    original = _journal(served)[-1]
    [command] = _copy_each(tab, served, [original])
    done = subprocess.run(
        ["/bin/bash", "-c", command],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []
    replayed = _journal(served)[-1]
    assert replayed["id"] != original["id"]
    assert (replayed["method"], replayed["url"]) == (original["method"], original["url"])
    assert replayed["form"] == original["form"]
