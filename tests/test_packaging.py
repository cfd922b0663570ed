"""The built wheel, installed in a fresh virtual environment, finds its templates and serves."""

from __future__ import annotations

import os
import re
import site
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest

from simulator.clients.http import send

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (found,) = out.glob("planfix_simulator-*.whl")
    return found


def test_the_wheel_ships_templates_and_typing_marker(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {
        "simulator/templates/" + p.relative_to(ROOT / "templates").as_posix()
        for p in (ROOT / "templates").rglob("*")
        if p.is_file()
    }
    assert templates, "the checkout has templates"
    assert templates <= names, f"missing from the wheel: {sorted(templates - names)}"
    assert "simulator/py.typed" in names
    assert any(n.endswith("entry_points.txt") for n in names)


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a child; when it fails, the assertion shows its stderr (not a bare exit status)."""
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def fresh_venv_seeing_our_dependencies(env_dir: Path) -> Path:
    """A new venv whose imports fall back to the site-packages of the Python running the suite.

    `system_site_packages=True` would show the *base* interpreter's packages, which are not the
    ones installed when the suite itself runs in a venv. Plain directory lines in a .pth file add
    this interpreter's site directories after the venv's own, without processing their .pth files,
    so an editable install of the checkout stays invisible and `simulator` can only come from the
    wheel.
    """
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    inner = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        timeout=60,
    ).stdout.strip()
    outer = [*site.getsitepackages(), site.getusersitepackages()]
    lines = [d for d in outer if Path(d).is_dir() and Path(d).resolve() != ROOT]
    (Path(inner) / "_suite_site_packages.pth").write_text("\n".join(lines) + "\n")
    return python


def test_the_installed_wheel_serves_its_pages(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    # Dependencies come from this interpreter's site-packages (no network in tests); the
    # package itself only from the wheel, which the checks below make sure of.
    python = fresh_venv_seeing_our_dependencies(env_dir)
    _run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        timeout=300,
    )
    # PYTHONPATH (a checkout put first on the path) would let `simulator` come from the checkout.
    alone = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    where = _run(
        [str(python), "-c", "import simulator.web.app as a; print(a.templates_dir())"],
        cwd=tmp_path,
        env=alone,
        timeout=60,
    ).stdout.strip()
    assert where.startswith(str(env_dir)), f"templates found outside the venv: {where}"

    proc = subprocess.Popen(
        [str(env_dir / "bin" / "planfix-sim"), "serve", "--port", "0"],
        cwd=tmp_path,
        env=alone,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = ""
        deadline = time.monotonic() + 60
        while not url and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            found = re.search(r"(http://127\.0\.0\.1:\d+)/webchat/api", line)
            url = found.group(1) if found else ""
        if not url:
            proc.kill()
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"the installed planfix-sim printed no endpoint:\n{err[-3000:]}")
        page = send("GET", url + "/")
        assert page.status == 200
        assert "planfix-simulator" in page.text
        assert "/webchat/api" in page.text
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
