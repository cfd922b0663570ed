"""What a run prints: a line per step, a failure block with file:line and diff, JUnit XML."""

from __future__ import annotations

import difflib
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any, TextIO

from simulator.errors import ConfigError
from simulator.scenarios.loader import Scenario
from simulator.scenarios.results import ScenarioResult, StepResult

MAX_SHOWN = 2000
LINE_WIDTH = 80
_DECODER = json.JSONDecoder()


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"… ({len(text)} chars)"


def count(number: int, noun: str) -> str:
    """`1 step`, `2 steps`: a number with its noun in the right form."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _split_json(line: str) -> list[tuple[bool, Any]]:
    """`line` as plain-text pieces and the JSON objects and lists embedded in it."""
    parts: list[tuple[bool, Any]] = []
    start = position = 0
    while position < len(line):
        if line[position] in "{[":
            try:
                value, end = _DECODER.raw_decode(line, position)
            except ValueError:
                position += 1
                continue
            if position > start:
                parts.append((False, line[start:position]))
            parts.append((True, value))
            start = position = end
        else:
            position += 1
    if start < len(line):
        parts.append((False, line[start:]))
    return parts


def _short_json(value: Any, budget: int) -> str:
    """`value` as JSON in at most about `budget` characters: whole members, then `…`."""
    full = json.dumps(value, ensure_ascii=False)
    if len(full) <= budget or not isinstance(value, dict | list):
        return full
    if isinstance(value, dict):
        members = [f"{json.dumps(k, ensure_ascii=False)}: {_dumps(v)}" for k, v in value.items()]
        opening, closing = "{", "}"
    else:
        members = [_dumps(v) for v in value]
        opening, closing = "[", "]"
    kept: list[str] = []
    for member in members:
        if len(opening + ", ".join([*kept, member]) + ", …" + closing) > budget:
            break
        kept.append(member)
    return opening + "".join(f"{m}, " for m in kept) + "…" + closing


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def clip_line(text: str, width: int = LINE_WIDTH) -> str:
    """The first line of `text` in about `width` characters, cut only between whole values."""
    line = text.splitlines()[0] if text else ""
    if len(line) <= width:
        return line
    parts = _split_json(line)
    plain = sum(len(piece) for is_json, piece in parts if not is_json)
    values = sum(1 for is_json, _ in parts if is_json)
    # What was matched (the JSON) matters more than the plain words around it.
    budget = max(width // 2, (width - plain) // values) if values else 0
    out = ""
    for is_json, piece in parts:
        text_piece = _short_json(piece, budget) if is_json else piece
        if len(out) + len(text_piece) <= width:
            out += text_piece
            continue
        if not is_json:
            # Cut plain text at a word, never inside a JSON value.
            room = piece[: max(0, width - len(out))]
            out += room[: room.rfind(" ") + 1] if " " in room else ""
        return out + "…"
    return out


def step_line(result: StepResult) -> str:
    """One line per step: mark, index, title, answer, time."""
    mark = "ok  " if result.ok else "FAIL"
    step = result.step
    outcome = result.summary or clip_line(result.error)
    title = result.title or step.title
    return f"  {mark} {step.index + 1:>2}. {title}  → {outcome}  ({result.duration_ms:.0f} ms)"


def scenario_header(scenario: Scenario) -> str:
    """The line before a scenario's steps."""
    return f"{scenario.name}  ({scenario.where})"


def failure_text(result: ScenarioResult) -> str:
    """Why a scenario failed: the step (file:line), expected vs. actual, request and answer."""
    scenario = result.scenario
    if result.error:
        return f"{scenario.where}: scenario {scenario.name!r}: {result.error}"
    failed = result.failed_step
    if failed is None:
        return ""
    step = failed.step
    title = failed.title or step.title
    lines = [f"{step.where}: step {step.index + 1} ({title}) of {scenario.name!r} failed"]
    if failed.mismatches and step.expect_line != step.line:
        lines[0] += f" (expect: {step.source}:{step.expect_line})"
    if failed.error:
        lines.append(f"  error: {failed.error}")
    for mismatch in failed.mismatches:
        lines.append(f"  {mismatch}")
    if failed.mismatches and failed.expected is not None:
        diff = difflib.unified_diff(
            _json(failed.expected).splitlines(),
            _json(failed.actual).splitlines(),
            "expected",
            "actual",
            lineterm="",
        )
        lines.extend("  " + line for line in diff)
    for exchange in failed.exchanges:
        lines.append(f"  request: {exchange.method} {exchange.url}")
        if exchange.request:
            lines.append(f"    {_clip(exchange.request)}")
        if exchange.error:
            lines.append(f"  answer: {exchange.error}")
        else:
            lines.append(
                f"  answer: {exchange.status} {_clip(exchange.answer.strip()) or '(empty body)'}"
            )
    return "\n".join(lines)


def print_result(result: ScenarioResult, out: TextIO) -> None:
    """The closing line of a scenario, and the failure block when it failed."""
    if result.ok:
        print(
            f"  passed ({count(len(result.steps), 'step')}, {result.duration_ms:.0f} ms)", file=out
        )
    else:
        print(failure_text(result), file=out)


def junit_xml(
    results: Sequence[ScenarioResult],
    invalid: Sequence[ConfigError] = (),
    suite: str = "planfix-sim scenarios",
) -> ET.ElementTree[ET.Element]:
    """A JUnit XML report: one testcase per scenario; invalid files are errors."""
    root = ET.Element("testsuites", name=suite)
    by_file: dict[str, list[ET.Element]] = {}
    totals = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    counts: dict[str, dict[str, float]] = {}

    def case(source: str, name: str, seconds: float, line: int | None) -> ET.Element:
        element = ET.Element(
            "testcase", name=name, classname=source, time=f"{seconds:.3f}", file=source
        )
        if line is not None:
            element.set("line", str(line))
        by_file.setdefault(source, []).append(element)
        c = counts.setdefault(source, {"tests": 0, "failures": 0, "errors": 0, "time": 0.0})
        c["tests"] += 1
        c["time"] += seconds
        return element

    for result in results:
        scenario = result.scenario
        element = case(scenario.source, scenario.name, result.duration_ms / 1000, scenario.line)
        if result.error:
            error = ET.SubElement(element, "error", message=result.error[:200], type="setup")
            error.text = failure_text(result)
            counts[scenario.source]["errors"] += 1
        elif not result.ok:
            failed = result.failed_step
            message = failed.error or "; ".join(map(str, failed.mismatches)) if failed else ""
            failure = ET.SubElement(element, "failure", message=message[:200], type="mismatch")
            failure.text = failure_text(result)
            counts[scenario.source]["failures"] += 1
    for problem in invalid:
        element = case(problem.source, "(invalid file)", 0.0, problem.line)
        error = ET.SubElement(element, "error", message=str(problem)[:200], type="invalid")
        error.text = str(problem)
        counts[problem.source]["errors"] += 1
    for source, cases in by_file.items():
        c = counts[source]
        testsuite = ET.SubElement(
            root,
            "testsuite",
            name=source,
            tests=str(int(c["tests"])),
            failures=str(int(c["failures"])),
            errors=str(int(c["errors"])),
            skipped="0",
            time=f"{c['time']:.3f}",
        )
        testsuite.extend(cases)
        for key in ("tests", "failures", "errors", "time"):
            totals[key] += c[key]
    for key in ("tests", "failures", "errors"):
        root.set(key, str(int(totals[key])))
    root.set("time", f"{totals['time']:.3f}")
    ET.indent(root)
    return ET.ElementTree(root)
