"""The pytest plugin's one-line fuzz of a webhook, used as a team testing its integration would."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SUITE = """
from tests.testing.webhooks import TOKEN, Webhook, serving, two_attachments


def test_a_correct_webhook(fuzz_webhook):
    with serving(Webhook(checks_provider=False)) as url:
        result = fuzz_webhook(url, TOKEN, examples=20, seed=1)
    assert result.exit_code == 0


def test_a_webhook_with_a_crash(fuzz_webhook):
    with serving(Webhook(server_error=two_attachments)) as url:
        fuzz_webhook(url, TOKEN, examples=40, seed=1)
"""


def test_fuzz_webhook_fails_the_test_with_the_minimal_curl(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_webhook=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAILED [[]must[]] no_server_error: server error 500*",
            "*curl -sS -i --max-time 5 -X POST 'http://127.0.0.1:*attachments*",
            "*scenario file: *planfix-fuzz-1-no_server_error-*.yaml",
        ]
    )
