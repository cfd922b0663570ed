"""The README's examples work as printed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

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
