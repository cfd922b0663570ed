"""Regression scenarios from `planfix-sim fuzz` name no URL or token: they replay on any port."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.cli import main
from tests.testing.webhooks import TOKEN, Webhook, plus_in_chat, serving, two_attachments


def buggy() -> Webhook:
    return Webhook(server_error=two_attachments, mangled_chat=plus_in_chat)


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The scenario files of one fuzz run against a buggy webhook, by check and kind."""
    out = tmp_path_factory.mktemp("fuzz")
    with serving(buggy()) as url:
        args = ["fuzz", "--integration-url", url, "--token", TOKEN, "--out", str(out)]
        args += ["--database", "none", "--examples", "150", "--seed", "3"]
        assert main(args) == 1
    files = {path.stem.split("-", 3)[3]: path for path in out.glob("planfix-fuzz-*.yaml")}
    for path in files.values():
        text = path.read_text()
        assert "127.0.0.1" not in text
        assert TOKEN not in text
    return files


CRASH = "no_server_error-valid-requests"


@pytest.mark.parametrize("failure", [CRASH, "valid_accepted-chatid-not-echoed"])
def test_a_scenario_replays_the_failure_on_another_port_and_passes_once_fixed(
    scenarios: dict[str, Path], failure: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenarios[failure]
    check = failure.split("-")[0]
    with serving(buggy()) as url:
        code = main(["run", str(path), "--integration-url", url, "--integration-token", TOKEN])
    out = capsys.readouterr().out
    assert code == 1
    assert f"[{check}]" in out
    with serving(Webhook()) as url:
        code = main(["run", str(path), "--integration-url", url, "--integration-token", TOKEN])
    assert code == 0, capsys.readouterr().out


def test_the_environment_gives_the_url_and_token(
    scenarios: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(Webhook()) as url:
        monkeypatch.setenv("PLANFIX_SIM_INTEGRATION_URL", url)
        monkeypatch.setenv("PLANFIX_SIM_INTEGRATION_TOKEN", TOKEN)
        assert main(["run", str(scenarios[CRASH])]) == 0


def test_without_url_or_token_the_run_fails_naming_what_is_missing(
    scenarios: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(scenarios[CRASH])]) == 1
    out = capsys.readouterr().out
    assert "integration_url_not_given" in out
    with serving(Webhook()) as url:
        assert main(["run", str(scenarios[CRASH]), "--integration-url", url]) == 1
    assert "'integration_token' is undefined" in capsys.readouterr().out
