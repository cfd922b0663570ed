"""`planfix-sim fuzz` reports every distinct failure of a run: curl, scenario file, JUnit, table."""

from __future__ import annotations

import io
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

from simulator.cli import main
from simulator.scenarios.loader import load_file
from simulator.testing.fuzz.command import Progress
from simulator.testing.fuzz.driver import Tally
from tests.testing.webhooks import TOKEN, Webhook, plus_in_chat, serving, two_attachments


def fuzz(url: str, tmp_path: Path, *extra: str) -> int:
    """`planfix-sim fuzz` on a webhook, without an example database unless `extra` names one."""
    database = () if "--database" in extra else ("--database", "none")
    args = ["fuzz", "--integration-url", url, "--token", TOKEN, "--out", str(tmp_path)]
    return main([*args, *database, *extra])


def blocks(out: str) -> dict[str, str]:
    """Each reported failure's text, keyed by its first line."""
    parts = re.split(r"\n(?=FAILED \[|WARNING \[)", out)
    return {part.splitlines()[0]: part for part in parts[1:]}


def test_two_planted_bugs_are_both_reported_by_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    buggy = Webhook(server_error=two_attachments, mangled_chat=plus_in_chat)
    junit = tmp_path / "fuzz.xml"
    with serving(buggy) as url:
        code = fuzz(url, tmp_path, "--examples", "150", "--seed", "3", "--junit", str(junit))
    out = capsys.readouterr().out
    assert code == 1
    found = blocks(out)
    crash = next(
        text for line, text in found.items() if "no_server_error: server error 500" in line
    )
    echo = next(text for line, text in found.items() if "valid_accepted: chatId not echoed" in line)
    for text in (crash, echo):
        assert "  curl -sS -i" in text
        path = Path(re.search(r"scenario file: (\S+)", text)[1])  # type: ignore[index]
        assert path.parent == tmp_path
        assert load_file(path)  # the scenario schema accepts it
    # Shrunk: the crash needs exactly two attachments, the echo a '+' in the chatId.
    assert crash.split("curl ")[-1].count("attachments[url]=") == 2
    assert re.search(r"chatId=[^ ]*\+", echo)
    assert "FAILED: " in out
    assert re.search(r"no_server_error +must +\d+ +\d+ +failed", out)
    assert re.search(r"token_refused +must +\d+ +0 +passed", out)
    # JUnit: one test case per check, failures where checks failed.
    suite = ElementTree.parse(junit).getroot().find("testsuite")  # noqa: S314 - written just now
    assert suite is not None
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert len(cases) == 6
    failed = {name for name, case in cases.items() if case.find("failure") is not None}
    assert failed == {"no_server_error", "valid_accepted"}
    assert suite.get("failures") == "2"
    failure = cases["valid_accepted"].find("failure")
    assert failure is not None
    assert "chatId not echoed" in (failure.text or "")


def test_the_seed_is_printed_and_repeats_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(Webhook()) as url:
        assert fuzz(url, tmp_path, "--examples", "20") == 0
        seed = re.search(r"seed (\d+)", capsys.readouterr().out)[1]  # type: ignore[index]
        assert fuzz(url, tmp_path, "--examples", "20", "--seed", seed) == 0
        assert f"seed {seed}" in capsys.readouterr().out


def test_failures_found_are_tried_first_by_the_next_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = str(tmp_path / "db")
    with serving(Webhook(server_error=two_attachments)) as url:
        assert fuzz(url, tmp_path, "--examples", "60", "--database", database) == 1
        assert any(Path(database).rglob("*"))
        capsys.readouterr()
        # One example is too few to find the bug, unless the stored failure is tried first.
        assert fuzz(url, tmp_path, "--examples", "1", "--database", database) == 1
        assert "no_server_error: server error 500" in capsys.readouterr().out
        assert fuzz(url, tmp_path, "--examples", "1", "--database", "none") == 0


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("out", "shown"),
    [
        (Terminal(), "\r  [###############               ] 5 examples, 7 requests, 1 failures"),
        (io.StringIO(), "  … 5 examples, 7 requests, 1 failures\n"),
    ],
)
def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise(out: io.StringIO, shown: str) -> None:
    progress = Progress(out, examples=10)
    progress(Tally(examples=5, requests=7), 1)
    assert out.getvalue() == shown
