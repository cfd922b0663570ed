"""Configuration files: tokens generated when left out, every error at once, `default` explicit."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from simulator.config.settings import DOC_PLANFIX_TOKEN, load_settings
from simulator.contract import Integration
from simulator.errors import ConfigError
from simulator.runtime import EXTENSION
from simulator.web.app import create_app
from tests.served import Served

TOKEN = re.compile(r"^[0-9a-f]{32}$")


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sim.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def rest_of_banner(served: Served) -> list[str]:
    """The banner lines after `serving on` (printed at once, before the first request)."""
    assert served.proc.stdout is not None
    lines = []
    for _ in range(50):
        line = served.proc.stdout.readline().rstrip("\n")
        lines.append(line)
        if line.startswith("  server:"):
            break
    return lines


def stored_integration(path: Path, db: Path, name: str) -> Integration:
    """The integration `name` as an app built from config file `path` stored it in `db`."""
    app = create_app({"config_file": str(path), "db": str(db)})
    store = app.extensions[EXTENSION].store
    try:
        found = store.integration_by_name(name)
    finally:
        store.close()
    assert found is not None
    return found


# -- tokens ----------------------------------------------------------------------------------


def test_an_integration_without_tokens_gets_generated_ones(tmp_path: Path) -> None:
    path = config(tmp_path, "integrations:\n  - name: bot\n    url: http://127.0.0.1:9/hook\n")
    bot = stored_integration(path, tmp_path / "db.sqlite3", "bot")
    assert TOKEN.match(bot.planfix_token), bot
    assert TOKEN.match(bot.token), bot
    assert bot.planfix_token != bot.token


def test_a_given_token_is_kept_and_only_the_missing_one_generated(tmp_path: Path) -> None:
    path = config(tmp_path, "integrations:\n  - name: bot\n    planfix_token: mine\n")
    bot = stored_integration(path, tmp_path / "db.sqlite3", "bot")
    assert bot.planfix_token == "mine"
    assert TOKEN.match(bot.token)


def test_generated_tokens_survive_a_restart_on_the_same_database(tmp_path: Path) -> None:
    path = config(tmp_path, "integrations:\n  - name: bot\n")
    db = tmp_path / "db.sqlite3"
    before = stored_integration(path, db, "bot")
    assert stored_integration(path, db, "bot") == before


def test_serve_prints_the_generated_tokens_once_and_every_worker_accepts_them(
    tmp_path: Path,
) -> None:
    path = config(tmp_path, "integrations:\n  - name: bot\n")
    served = Served("--config", str(path), "--workers", "2", "--threads", "2")
    try:
        banner = rest_of_banner(served)
        bot = [line for line in banner if "integration 'bot'" in line]
        assert len(bot) == 1, banner
        found = re.search(r"planfix_token=([0-9a-f]{32}) token=([0-9a-f]{32})", bot[0])
        assert found, bot
        assert "generated" in bot[0]
        planfix_token = found.group(1)
        # Each request may reach either worker: all of them must know the same token.
        for index in range(8):
            answer = requests.post(
                served.api,
                data={
                    "cmd": "getTask",
                    "providerId": "p",
                    "chatId": f"nobody-{index}",
                    "planfix_token": planfix_token,
                },
                timeout=30,
            )
            assert answer.status_code == 400, answer.text  # task not found: the token is known
            assert answer.json() == {"error": "task not found"}
    finally:
        assert served.stop() == 0


# -- every error at once ---------------------------------------------------------------------

THREE_PROBLEMS = """\
account: "not an account!"
journal_retention: lots
integrations:
  - name: bot
    profle: observed
"""


def test_a_config_file_reports_every_error_at_once_sorted_by_line(tmp_path: Path) -> None:
    path = config(tmp_path, THREE_PROBLEMS)
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=str(path), environ={})
    assert str(caught.value).splitlines() == [
        f"{path}:1: account: 'not an account!' does not match '^[A-Za-z0-9-]+$'",
        f"{path}:2: journal_retention: 'lots' is not of type 'integer'",
        f"{path}:5: integrations[0].profle: unknown key 'profle'; did you mean 'profile'?",
    ]


def test_serve_prints_every_error_of_the_config_and_exits_2(tmp_path: Path) -> None:
    path = config(tmp_path, THREE_PROBLEMS)
    done = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "serve", "--port", "0", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert [line.split(": ")[2] for line in lines] == [
        "account",
        "journal_retention",
        "integrations[0].profle",
    ], done.stderr
    assert all(line.startswith(f"planfix-sim: {path}:") for line in lines)


def test_duplicates_are_reported_with_the_other_errors_at_their_lines(tmp_path: Path) -> None:
    path = config(
        tmp_path,
        "journal_retention: lots\nintegrations:\n  - {name: a, planfix_token: t}\n"
        "  - {name: a, planfix_token: t}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=str(path), environ={})
    assert str(caught.value).splitlines() == [
        f"{path}:1: journal_retention: 'lots' is not of type 'integer'",
        f"{path}:4: integrations[1].name: must be unique: integrations[0] has 'a' too",
        f"{path}:4: integrations[1].planfix_token: must be unique: integrations[0] has 't' too",
    ]


# -- the default integration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "environ", "names"),
    [
        pytest.param("integrations: [{name: bot}]\n", {}, ["default", "bot"], id="kept-by-default"),
        pytest.param(
            "keep_default_integration: true\nintegrations: [{name: bot}]\n",
            {},
            ["default", "bot"],
            id="kept-explicitly",
        ),
        pytest.param(
            "keep_default_integration: false\nintegrations: [{name: bot}]\n",
            {},
            ["bot"],
            id="dropped-explicitly",
        ),
        pytest.param(
            "integrations: [{name: bot}]\n",
            {"SIMULATOR_KEEP_DEFAULT_INTEGRATION": "false"},
            ["bot"],
            id="dropped-by-the-environment",
        ),
        pytest.param(
            "integrations: [{name: default, planfix_token: own}, {name: bot}]\n",
            {},
            ["default", "bot"],
            id="declared-default-replaces-the-built-in-one",
        ),
        pytest.param("keep_default_integration: false\n", {}, [], id="dropped-without-others"),
    ],
)
def test_keeping_the_default_integration_is_explicit(
    tmp_path: Path, text: str, environ: dict[str, str], names: list[str]
) -> None:
    settings = load_settings(config_file=str(config(tmp_path, text)), environ=environ)
    assert [i.name for i in settings.integrations] == names


def test_a_declared_default_is_the_files_not_the_built_in_one(tmp_path: Path) -> None:
    path = config(tmp_path, "integrations: [{name: default, planfix_token: own}]\n")
    (default,) = load_settings(config_file=str(path), environ={}).integrations
    assert default.planfix_token == "own"


def test_reusing_the_default_token_while_keeping_it_says_what_to_do(tmp_path: Path) -> None:
    path = config(tmp_path, f"integrations: [{{name: bot, planfix_token: {DOC_PLANFIX_TOKEN}}}]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config_file=str(path), environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}:1: integrations[0].planfix_token: ")
    assert "the default integration's planfix_token" in message
    assert "keep_default_integration: false" in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("integrations: [{name: bot}]\n", "default integration: kept"),
        (
            "keep_default_integration: false\nintegrations: [{name: bot}]\n",
            "default integration: dropped",
        ),
        ("integrations: [{name: default}]\n", "default integration: declared in"),
    ],
)
def test_serve_says_at_start_what_became_of_the_default_integration(
    tmp_path: Path, text: str, says: str
) -> None:
    served = Served("--config", str(config(tmp_path, text)), "--server", "werkzeug")
    try:
        banner = rest_of_banner(served)
        assert [line for line in banner if says in line], banner
        listed = requests.get(served.url + "/api/v1/integrations", timeout=30).json()
        names = [i["name"] for i in listed]
        assert ("default" in names) == ("dropped" not in says)
    finally:
        assert served.stop() == 0
