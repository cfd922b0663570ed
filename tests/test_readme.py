"""The README's examples work as printed."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from simulator.config.settings import load_settings
from simulator.serving.live import LiveServer

README = Path(__file__).resolve().parent.parent / "README.md"
pytestmark = pytest.mark.slow


def shell_blocks() -> list[str]:
    """Every ```sh block of the README, in order."""
    return re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_examples() -> None:
    assert len(shell_blocks()) >= 3


def test_every_shell_example_runs_against_a_live_simulator() -> None:
    with LiveServer() as server:
        port = server.url.rsplit(":", 1)[1]
        for block in shell_blocks():
            script = block.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, f"{block}\n{done.stderr}"
            assert "Internal error" not in done.stdout, block
            for expected in re.findall(r"^# (\{.*\})$", block, flags=re.M):
                assert expected.replace(" ", "") in done.stdout.replace(" ", ""), block
        server.check()


def ci_recipes() -> dict[str, list[str]]:
    """The CI recipes' commands, by CI: GitHub Actions' `run` steps, GitLab's `script` lines."""
    recipes: dict[str, list[str]] = {}
    for block in re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and "jobs" in doc:
            steps = doc["jobs"]["planfix-contract"]["steps"]
            recipes["github"] = [step["run"] for step in steps if "run" in step]
        elif isinstance(doc, dict) and "planfix-contract" in doc:
            recipes["gitlab"] = list(doc["planfix-contract"]["script"])
    return recipes


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def yaml_blocks() -> list[str]:
    """Every ```yaml block of the README, as written."""
    return re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def yaml_example(top_level_key: str) -> str:
    """The one ```yaml block whose document has this top-level key."""
    [block] = [b for b in yaml_blocks() if top_level_key in (yaml.safe_load(b) or {})]
    return block


def test_the_scenario_example_passes(tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(yaml_example("steps"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "1 passed, 0 failed" in done.stdout


def test_the_configuration_example_loads(tmp_path: Path) -> None:
    block = yaml_example("integrations")
    path = tmp_path / "sim.yaml"
    path.write_text(block, encoding="utf-8")
    settings = load_settings(config_file=str(path), environ={})
    example = yaml.safe_load(block)
    assert settings.account == example["account"]
    declared = [i["name"] for i in example["integrations"]]
    kept = ["default"] if example["keep_default_integration"] else []
    assert [i.name for i in settings.integrations] == kept + declared


@pytest.mark.parametrize("ci", ["github", "gitlab"])
def test_the_ci_recipes_run_the_scenarios_and_write_a_junit_report(ci: str, tmp_path: Path) -> None:
    commands = [c for c in ci_recipes()[ci] if not c.startswith("pip install")]
    assert any("planfix-sim serve" in c for c in commands)
    port = str(free_port())
    shutil.copytree(README.parent / "scenarios", tmp_path / "scenarios")
    script = "\n".join(["set -euo pipefail", *commands]).replace("8080", port)
    bin_dir = Path(sys.executable).parent  # planfix-sim as installed beside this Python
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen(
        ["bash", "-c", script + "\nkill %1\nwait"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode in (0, 143), f"{out}\n{err}"
    suite = ElementTree.parse(tmp_path / "report.xml").getroot()  # noqa: S314 - written just now
    counts = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert counts is not None
    assert int(counts.get("tests", "0")) > 0
    assert counts.get("failures") == "0"
    assert counts.get("errors", "0") == "0"
    assert "serving on" in (tmp_path / "planfix-sim.log").read_text(encoding="utf-8")
