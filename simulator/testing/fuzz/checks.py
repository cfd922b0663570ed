"""The named checks of `planfix-sim fuzz`, in two tiers, and how one answer is judged.

Must-checks are the contract every party has to keep (a failure exits 1). Should-checks are what
the contract recommends but real integrations often skip (refusing a request without a field they
do not need): warnings by default, failures with `--strict`.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.clients.http import Answer
from simulator.clients.planfix import decode_answer
from simulator.testing.cases import Case

MUST, SHOULD = "must", "should"


@dataclass(frozen=True)
class Check:
    """A named property of every answer, with its tier and what it asks."""

    name: str
    tier: str
    asks: str


CHECKS = (
    Check("no_server_error", MUST, "never a 5xx"),
    Check("answers_in_time", MUST, "an answer within the timeout (and a connection at all)"),
    Check(
        "valid_accepted",
        MUST,
        "a valid request gets 200 JSON with string chatId and contactId (a reply's chatId"
        " echoed); for Planfix, its labelled answer",
    ),
    Check("token_refused", MUST, "a wrong or missing token gets 401"),
    Check("invalid_refused", SHOULD, "an invalid request gets 400 (413 when over the size limit)"),
    Check("error_body", SHOULD, "a refusal carries an `error` string (401: 'Invalid token')"),
)
BY_NAME = {check.name: check for check in CHECKS}
NAMES = tuple(BY_NAME)

# (check name, problem or None when it held), for each check that applies to an answer.
Outcome = list[tuple[str, str | None]]


def parse_checks(text: str | None) -> tuple[str, ...]:
    """`--checks a,b` → the selected names (all when empty); ValueError names unknown ones."""
    if not text or text.strip() == "all":
        return NAMES
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown check {', '.join(unknown)} (known: {', '.join(NAMES)})")
    return names


def checks_help() -> str:
    """The checks and their tiers, for `--help`."""
    return "; ".join(f"{c.name} ({c.tier}): {c.asks}" for c in CHECKS)


def _error_text(answer: Answer) -> str | None:
    body = answer.json_or_none()
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None


def _short(answer: Answer) -> str:
    return repr(answer.text[:200])


def _transport(answer: Answer, timeout: float) -> Outcome | None:
    if answer.status is None:
        if answer.error.startswith("timeout"):
            return [("answers_in_time", f"no answer within the {timeout:g} s timeout")]
        return [("answers_in_time", f"no answer: {answer.error}")]
    if answer.status >= 500:
        return [
            ("answers_in_time", None),
            ("no_server_error", f"server error {answer.status}: {_short(answer)}"),
        ]
    return None


def _expected(statuses: tuple[int, ...], case: Case, answer: Answer) -> str | None:
    if answer.status in statuses:
        return None
    wanted = " or ".join(str(s) for s in sorted(statuses))
    return f"expected {wanted} ({case.label}), got {answer.status}"


def _refusal(case: Case, answer: Answer, accepted: tuple[int, ...]) -> Outcome:
    token_case = 401 in case.statuses
    check = "token_refused" if token_case else "invalid_refused"
    problem = _expected(accepted, case, answer)
    outcome: Outcome = [(check, problem)]
    if problem is None and answer.status in (400, 401, 413):
        error = _error_text(answer)
        if error is None:
            outcome.append(("error_body", f"{answer.status} body lacks an 'error' string"))
        elif answer.status == 401 and error != "Invalid token":
            outcome.append(("error_body", f"401 error {error!r}, expected 'Invalid token'"))
        else:
            outcome.append(("error_body", None))
    return outcome


def _webhook_valid(case: Case, answer: Answer) -> str | None:
    problem = _expected((200,), case, answer)
    if problem:
        return problem
    body = answer.json_or_none()
    if not isinstance(body, dict):
        return f"200 body is not a JSON object: {_short(answer)}"
    for key in ("chatId", "contactId"):
        if not isinstance(body.get(key), str):
            return f"200 body lacks a string {key}: {_short(answer)}"
    sent = case.get("chatId")
    if sent is not None and body["chatId"] != sent:
        return f"chatId not echoed: sent {sent!r}, got {body['chatId']!r}"
    return None


def judge_webhook(case: Case, answer: Answer, timeout: float) -> Outcome:
    """The checks that apply to an integration's answer to one Planfix → chat request."""
    broken = _transport(answer, timeout)
    if broken is not None:
        return broken
    outcome: Outcome = [("answers_in_time", None), ("no_server_error", None)]
    if case.valid:
        return [*outcome, ("valid_accepted", _webhook_valid(case, answer))]
    return outcome + _refusal(case, answer, case.statuses)


def judge_planfix(case: Case, answer: Answer, timeout: float) -> Outcome:
    """The checks that apply to a Planfix server's answer to one chat → Planfix request."""
    broken = _transport(answer, timeout)
    if broken is not None:
        return broken
    outcome: Outcome = [("answers_in_time", None), ("no_server_error", None)]
    # The server's strict setting is unknown from outside: either mode's answer is acceptable.
    accepted = tuple(sorted(set(case.statuses) | set(case.strict_statuses)))
    if not case.valid:
        return outcome + _refusal(case, answer, accepted)
    problem = _expected(accepted, case, answer)
    numbered = problem is None and answer.status == 200 and case.cmd in ("getTask", "getContact")
    if numbered and decode_answer(case.cmd, case.form, answer).number is None:
        problem = f"{case.cmd} answered 200 without data.number: {_short(answer)}"
    return [*outcome, ("valid_accepted", problem)]
