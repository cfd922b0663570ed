"""What a fuzz run shows: the checks table, each failure as curl and scenario file, JUnit XML."""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote_plus

import yaml

from simulator.testing.cases import Case, Pairs
from simulator.testing.fuzz.checks import BY_NAME
from simulator.testing.fuzz.driver import Failure, Result, Target
from simulator.testing.fuzz.stateful import burst_forms

# A regression scenario names its target only through these, so it works on any port.
URL_VARIABLE = {"webhook": "integration_url", "planfix": "planfix_url"}
TOKEN_VARIABLE = {"webhook": "integration_token", "planfix": "planfix_token"}
TOKEN_FIELD = {"webhook": "token", "planfix": "planfix_token"}
ASSIGNED = "assigned_chat"


def _var(name: str) -> str:
    return "{{ " + name + " }}"


def curl_command(url: str, form: Sequence[tuple[str, str]], timeout: float) -> str:
    """A curl command that sends `form` exactly as the fuzzer did."""
    parts = ["curl", "-sS", "-i", "--max-time", f"{timeout:g}", "-X", "POST", url]
    parts += ["-H", "Content-Type: application/x-www-form-urlencoded"]
    for key, value in form:
        # curl encodes the value; the name must arrive encoded already.
        parts += ["--data-urlencode", f"{quote_plus(key, safe='[]')}={value}"]
    return " ".join(shlex.quote(p) for p in parts)


def summary_table(result: Result) -> list[str]:
    """One line per selected check: tier, answers that passed and failed, and the verdict."""
    width = max(len(name) for name in result.options.checks)
    lines = [f"  {'check':<{width}}  tier    passed  failed  result"]
    for name in result.options.checks:
        counts = result.tally.checks[name]
        lines.append(
            f"  {name:<{width}}  {BY_NAME[name].tier:<6}  {counts['passed']:6d}"
            f"  {counts['failed']:6d}  {result.state(name)}"
        )
    return lines


_JINJA = re.compile(r"\{[{%#]")


def _literal(value: str) -> str:
    # Scenario strings are Jinja2 templates: keep generated text literal.
    return "{% raw %}" + value + "{% endraw %}" if _JINJA.search(value) else value


def _form(target: Target, form: Pairs, chat: str | None = None) -> list[list[str]]:
    pairs = []
    for key, value in form:
        if key == TOKEN_FIELD[target.kind] and value == target.token:
            pairs.append([key, _var(TOKEN_VARIABLE[target.kind])])
        elif key == "chatId" and chat is not None:
            pairs.append([key, chat])
        else:
            pairs.append([key, _literal(value)])
    return pairs


def _expect(target: Target, case: Case, chat: str | None) -> dict[str, Any]:
    statuses = sorted(set(case.statuses) | set(case.strict_statuses))
    status: Any = statuses[0] if len(statuses) == 1 else {"$one_of": statuses}
    expect: dict[str, Any] = {"status": status}
    if case.valid and target.kind == "webhook":
        sent = case.get("chatId")
        expect["body"] = {
            "chatId": chat or (_literal(sent) if sent is not None else {"$type": "string"}),
            "contactId": {"$type": "string"},
        }
    elif not case.valid and statuses != [200]:
        expect["body"] = {"error": {"$type": "string"}}
    return expect


def _step(target: Target, name: str, form: Pairs, timeout: float, chat: str | None = None) -> Any:
    var = URL_VARIABLE[target.kind]
    # A run without the URL fails naming it rather than posting to "".
    url = _var(f"{var} or {var}_not_given") if target.kind == "webhook" else _var(var)
    form_list = _form(target, form, chat)
    return {
        "name": name,
        "http": {"method": "POST", "url": url, "form": form_list, "timeout": timeout},
    }


def scenario_document(result: Result, failure: Failure) -> str:
    """The failure as a scenario; `planfix-sim run FILE --integration-url U --integration-token T`
    (or --planfix-url/--planfix-token) replays it against wherever the target runs now."""
    target, timeout, case = result.target, result.options.timeout, failure.case
    steps: list[dict[str, Any]] = []
    for i, form in enumerate(case.setup):
        step = _step(target, f"{case.label}: delivery {i + 1}", form, timeout)
        step["expect"] = _expect(target, Case("setup", form), None)
        if case.chat_from_setup and i == 0:
            step["save"] = {ASSIGNED: "{{ response.body.chatId }}"}
        steps.append(step)
    chat = _var(ASSIGNED) if case.chat_from_setup else None
    forms = burst_forms(case.form, case.burst) if case.burst else [case.form]
    for i, form in enumerate(forms):
        name = f"[{failure.check}] {case.label}" + (
            f" ({i + 1} of {len(forms)})" if case.burst else ""
        )
        step = _step(target, name, form, timeout, chat)
        step["expect"] = _expect(target, case, chat)
        steps.append(step)
    flags = [v[target.kind].replace("_", "-") for v in (URL_VARIABLE, TOKEN_VARIABLE)]
    needs = f"--{flags[0]} URL --{flags[1]} TOKEN"
    doc = {
        "name": f"fuzz: [{failure.check}] {case.label} (seed {result.options.seed})",
        "description": f"Minimal request found by `planfix-sim fuzz` ({failure.check}):"
        f" {failure.problem}. Replay with `planfix-sim run FILE {needs}`"
        + (" (the burst's requests are sent one by one here)." if case.burst else "."),
        "steps": steps,
    }
    text: str = yaml.safe_dump(
        doc, allow_unicode=True, sort_keys=False, width=100, default_flow_style=None
    )
    return text


def _file_name(result: Result, failure: Failure) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", failure.kind.lower()).strip("-")[:50]
    return f"planfix-fuzz-{result.options.seed}-{failure.check}-{slug}.yaml"


def print_failures(result: Result, out_dir: str | None, out: TextIO) -> list[Path]:
    """Each failure (warnings too): problem, curl commands, answer, scenario file."""
    target, timeout = result.target, result.options.timeout
    written: list[Path] = []
    for failure in result.failures:
        state = "FAILED" if result.state(failure.check) == "failed" else "WARNING"
        print(f"\n{state} [{failure.tier}] {failure.check}: {failure.problem}", file=out)
        print(f"  minimal request ({failure.case.label}):", file=out)
        for form in failure.case.setup:
            print("  # delivered first:", file=out)
            print("  " + curl_command(target.url, form, timeout), file=out)
        if failure.case.burst:
            print(f"  # {failure.case.burst} of these at once (messageId varies):", file=out)
        print("  " + curl_command(target.url, failure.form, timeout), file=out)
        got = failure.answer
        print(f"  answer: {got.status or got.error} {got.text[:300]!r}", file=out)
        document = scenario_document(result, failure)
        if out_dir is None:
            continue
        path = Path(out_dir) / _file_name(result, failure)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(document, encoding="utf-8")
            written.append(path)
            print(f"  scenario file: {path}", file=out)
        except OSError as exc:
            print(f"  scenario file not written ({exc.strerror}):\n{document}", file=out)
    return written


def junit_xml(result: Result) -> ET.ElementTree:
    """One test case per selected check; failed checks carry a failure per distinct failure."""
    checks = result.options.checks
    failed = [c for c in checks if result.state(c) == "failed"]
    suite = ET.Element(
        "testsuite",
        name=f"planfix-sim fuzz {result.target.kind}",
        tests=str(len(checks)),
        failures=str(len(failed)),
        errors="0",
    )
    for name in checks:
        case = ET.SubElement(suite, "testcase", classname=f"fuzz.{result.target.kind}", name=name)
        mine = [f for f in result.failures if f.check == name]
        lines = [f"{f.case.label}: {f.problem}" for f in mine]
        if name in failed:
            element = ET.SubElement(case, "failure", message=lines[0], type=BY_NAME[name].tier)
            element.text = "\n".join(
                f"{line}\n  {curl_command(result.target.url, f.form, result.options.timeout)}"
                for line, f in zip(lines, mine, strict=True)
            )
        elif mine:
            ET.SubElement(case, "system-out").text = "warning: " + "\nwarning: ".join(lines)
    root = ET.Element("testsuites", name="planfix-sim fuzz")
    root.append(suite)
    return ET.ElementTree(root)
