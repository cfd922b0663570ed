"""`planfix-sim fuzz` checks: named, in two tiers, selectable; variants; both directions."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import pytest

from simulator.cli import main
from simulator.clients.http import Answer
from simulator.serving.live import LiveServer
from simulator.testing.cases import Case
from simulator.testing.fuzz.checks import CHECKS, judge_webhook
from tests.testing.webhooks import TOKEN, Webhook, planfix_without_token_check, serving

REPLY = (("cmd", "newMessage"), ("providerId", "vk"), ("chatId", "c+1"), ("token", TOKEN))
REPLY += (("message", "hi"),)
VALID = Case("valid reply", REPLY)
WRONG_TOKEN = Case("reply with a wrong token", REPLY, (401,), "Invalid token")
NO_PROVIDER = Case("reply without providerId", REPLY[:1] + REPLY[2:], (400,), "Invalid parameters")


def answer(status: int | None, body: str = "", error: str = "") -> Answer:
    return Answer(status, body.encode(), error=error)


def fuzz(url: str, tmp_path: Path, *extra: str) -> int:
    """`planfix-sim fuzz` on a webhook, without an example database unless `extra` names one."""
    database = () if "--database" in extra else ("--database", "none")
    args = ["fuzz", "--integration-url", url, "--token", TOKEN, "--out", str(tmp_path)]
    return main([*args, *database, *extra])


@pytest.mark.parametrize(
    ("case", "got", "failing"),
    [
        (VALID, answer(200, '{"chatId": "c+1", "contactId": "1"}'), []),
        (VALID, answer(200, '{"chatId": "c 1", "contactId": "1"}'), ["valid_accepted"]),
        (VALID, answer(200, '{"chatId": "c+1"}'), ["valid_accepted"]),
        (VALID, answer(200, "ok"), ["valid_accepted"]),
        (VALID, answer(400, '{"error": "Invalid parameters"}'), ["valid_accepted"]),
        (VALID, answer(502, "bad gateway"), ["no_server_error"]),
        (VALID, answer(None, error="timeout: timed out"), ["answers_in_time"]),
        (VALID, answer(None, error="refused: connection refused"), ["answers_in_time"]),
        (WRONG_TOKEN, answer(401, '{"error": "Invalid token"}'), []),
        (WRONG_TOKEN, answer(200, '{"chatId": "c+1", "contactId": "1"}'), ["token_refused"]),
        (WRONG_TOKEN, answer(403, '{"error": "Forbidden"}'), ["token_refused"]),
        (WRONG_TOKEN, answer(401, "no"), ["error_body"]),
        (NO_PROVIDER, answer(400, '{"error": "Invalid parameters"}'), []),
        (NO_PROVIDER, answer(200, '{"chatId": "c+1", "contactId": "1"}'), ["invalid_refused"]),
        (NO_PROVIDER, answer(400, ""), ["error_body"]),
    ],
)
def test_each_answer_fails_exactly_the_checks_it_breaks(
    case: Case, got: Answer, failing: list[str]
) -> None:
    outcome = judge_webhook(case, got, 5.0)
    assert [name for name, problem in outcome if problem] == failing


def test_the_tiers_are_the_issues() -> None:
    tiers = {check.name: check.tier for check in CHECKS}
    assert tiers == {
        "no_server_error": "must",
        "answers_in_time": "must",
        "valid_accepted": "must",
        "token_refused": "must",
        "invalid_refused": "should",
        "error_body": "should",
    }


def test_help_lists_every_check_with_its_tier(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fuzz", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for check in CHECKS:
        assert f"{check.name} ({check.tier})" in out


def test_a_webhook_without_a_provider_check_passes_with_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(Webhook(checks_provider=False)) as url:
        code = fuzz(url, tmp_path, "--examples", "80", "--seed", "5", "--no-stateful")
    out = capsys.readouterr().out
    assert code == 0, out
    warning = next(line for line in out.splitlines() if line.startswith("WARNING"))
    assert warning.startswith("WARNING [should] invalid_refused: expected 400 (")
    assert warning.endswith(" without providerId), got 200")
    assert "invalid_refused  should" in out
    assert out.count(" warned") == 1
    assert "OK: the contract held (" in out


def test_strict_fails_that_webhook_naming_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(Webhook(checks_provider=False)) as url:
        code = fuzz(url, tmp_path, "--examples", "80", "--seed", "5", "--no-stateful", "--strict")
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED [should] invalid_refused: expected 400" in out
    assert "reproduce: planfix-sim fuzz" in out
    assert "--strict" in out


def test_checks_selects_which_checks_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(Webhook(checks_provider=False)) as url:
        code = fuzz(
            url, tmp_path, "--examples", "30", "--seed", "1", "--strict", "--no-stateful",
            "--checks", "no_server_error,valid_accepted",
        )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "invalid_refused" not in out
    assert "valid_accepted   must" in out


@pytest.mark.parametrize(
    ("option", "error"),
    [
        (["--checks", "no_server_error,teapot"], "unknown check teapot"),
        (["--variants", "reply,second"], "unknown variant second"),
    ],
)
def test_unknown_names_are_usage_errors(
    option: list[str], error: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fuzz("http://127.0.0.1:9/", tmp_path, *option) == 2
    assert error in capsys.readouterr().err


def test_variants_reply_sends_no_first_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    webhook = Webhook()
    with serving(webhook) as url:
        assert fuzz(url, tmp_path, "--examples", "60", "--seed", "2", "--variants", "reply") == 0
    forms = webhook.forms()
    assert len(forms) >= 60
    # A first message names the contact by phone and has no chatId.
    assert not [f for f in forms if "contactPhone" in f and "chatId" not in f]
    assert "valid first" not in capsys.readouterr().out


def test_variants_first_sends_only_first_messages(tmp_path: Path) -> None:
    webhook = Webhook()
    with serving(webhook) as url:
        assert fuzz(url, tmp_path, "--examples", "40", "--seed", "2", "--variants", "first") == 0
    assert all("chatId" not in form for form in webhook.forms())


def test_the_simulator_passes_as_planfix(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planfix = ["--planfix-url", live_server.url + "/webchat/api", "--database", "none"]
    planfix += [
        "--planfix-token",
        "303cb962ac59075b964b07152d234b70",
        "--max-body-bytes",
        "1048576",
    ]
    junit = tmp_path / "planfix.xml"
    # Generous: "answered within the timeout" is a check, and the suite shares 2 cores.
    # A fixed seed and enough examples: the run must include a getTask whose chat it made first.
    planfix += [
        "--examples",
        "120",
        "--seed",
        "1",
        "--timeout",
        "30",
        "--out",
        str(tmp_path),
        "--junit",
        str(junit),
    ]
    code = main(["fuzz", *planfix])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "valid getTask (chat exists)" in out
    suite = ElementTree.parse(junit).getroot().find("testsuite")  # noqa: S314 - written just now
    assert suite is not None
    assert suite.get("failures") == "0"
    assert len(suite.findall("testcase")) == len(CHECKS)


def test_a_planfix_without_a_token_check_fails_token_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "planfix.xml"
    with serving(planfix_without_token_check) as url:
        code = main(
            [
                "fuzz", "--planfix-url", url, "--planfix-token", "t", "--database", "none",
                "--examples", "30", "--seed", "1", "--out", str(tmp_path), "--junit", str(junit),
                "--checks", "no_server_error,token_refused",
            ]
        )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED [must] token_refused: expected 401" in out
    assert "scenario file: " in out
    failed = {
        case.get("name")
        for case in ElementTree.parse(junit).iter("testcase")  # noqa: S314 - written just now
        if case.find("failure") is not None
    }
    assert failed == {"token_refused"}
