"""A step's expectations against its response: status, body, text, notes, headers and more."""

from __future__ import annotations

from typing import Any

from simulator.scenarios.matchers import Mismatch, compare, project


def check_expectations(
    expect: dict[str, Any], response: dict[str, Any]
) -> tuple[list[Mismatch], dict[str, Any], dict[str, Any]]:
    """The mismatches between a step's `expect` and its response, and what was compared."""
    expected: dict[str, Any] = {}
    actual: dict[str, Any] = {}
    found: list[Mismatch] = []
    if response.get("error") and "status" not in expect:
        found.append(Mismatch("status", "an answer", None, response["error"]))
    elif "status" not in expect and not succeeded(response.get("status")):
        # No status expected: the step means "this works", so a refusal must not pass.
        found.append(Mismatch("status", "2xx", response.get("status"), "expected success"))
    for key, want in expect.items():
        got: Any
        if key == "status":
            got = response.get("status")
        elif key == "body":
            got = response.get("body")
            if got is None and response.get("text"):
                got = response["text"]  # not JSON: shown as text in the diff
        elif key == "text":
            got = response.get("text", "")
        elif key == "empty":
            got = response.get("text", "") == ""
            want = bool(want)
        elif key == "notes":
            got = response.get("notes")
            if got is None:
                continue  # the Planfix target is not this simulator: no notes to read
            codes = [n.get("code") for n in got]
            expected[key], actual[key] = want, codes
            if want == "none":
                if got:
                    texts = "; ".join(f"{n.get('code')}: {n.get('text')}" for n in got)
                    found.append(Mismatch("notes", "none", codes, f"contract notes: {texts}"))
            else:
                missing = [c for c in want if c not in codes]
                if missing:
                    found.append(Mismatch("notes", want, codes, f"missing notes {missing}"))
            continue
        elif key == "headers":
            got = response.get("headers", {})
            want = {str(k).lower(): v for k, v in want.items()}
        else:
            got = response.get(key)
        expected[key], actual[key] = want, project(want, got)
        found.extend(compare(want, got, key))
    return found, expected, actual


def succeeded(status: Any) -> bool:
    """Whether a step's status is a success, or absent (steps without an HTTP answer)."""
    return status is None or (isinstance(status, int) and 200 <= status < 300)
