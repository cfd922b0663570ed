"""`planfix-sim fuzz` sends sequences, as Planfix does: first then reply, redelivery, bursts."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.cli import main
from tests.testing.webhooks import TOKEN, Webhook, serving


def fuzz(url: str, tmp_path: Path, *extra: str) -> int:
    args = ["fuzz", "--integration-url", url, "--token", TOKEN, "--out", str(tmp_path)]
    return main([*args, "--database", "none", *extra])


def test_a_correct_webhook_gets_every_kind_of_sequence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    webhook = Webhook()
    with serving(webhook) as url:
        assert fuzz(url, tmp_path, "--examples", "80", "--seed", "1") == 0
    out = capsys.readouterr().out
    for label in (
        "reply to the chat a first message opened",
        "delivered twice (same messageId)",
        "deliveries at once",
    ):
        assert label in out
    forms = webhook.forms()
    # A reply went to the chat the webhook assigned to a first message ("phone-" + its phone).
    assigned = {"phone-" + f.get("contactPhone", "") for f in forms if "chatId" not in f}
    assert assigned & {f.get("chatId") for f in forms}
    # The same delivery twice in a row, and deliveries at once.
    assert any(a == b for a, b in zip(webhook.received, webhook.received[1:], strict=False))
    assert webhook.most_at_once > 1


@pytest.mark.parametrize(
    ("webhook", "failure", "label"),
    [
        (Webhook(one_at_a_time=True), "FAILED [must] no_server_error: server error 500", "burst"),
        (
            Webhook(refuses_redelivery=True),
            "FAILED [must] valid_accepted: expected 200",
            None,
        ),
    ],
)
def test_a_webhook_that_breaks_under_a_sequence_fails(
    webhook: Webhook,
    failure: str,
    label: str | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serving(webhook) as url:
        assert fuzz(url, tmp_path, "--examples", "40", "--seed", "2", "--variants", "reply") == 1
    out = capsys.readouterr().out
    assert failure in out
    if label:
        assert f"minimal request ({label}" in out
    # The fuzzer itself never hangs on it: every delivery got an answer.
    assert "answers_in_time  must" in out
    assert "no answer" not in out


def test_no_stateful_sends_single_requests_only(tmp_path: Path) -> None:
    webhook = Webhook(one_at_a_time=True, refuses_redelivery=True)
    with serving(webhook) as url:
        # messageIds repeat across single requests too; only the 500 is left to find.
        fuzz(url, tmp_path, "--examples", "30", "--seed", "2", "--no-stateful")
    assert webhook.most_at_once == 1
