"""The disk under `planfix-sim serve --db` turns hostile: it fills up, the file is deleted or
replaced, its pages are overwritten. Every answer stays JSON (503 where the store cannot be
trusted), what can be answered still is, nothing answered 200 is lost, and the log says why."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest
import requests

from tests.conftest import unavailable
from tests.served import Served, forget_sessions, get_task, new_message, post, stored

pytestmark = pytest.mark.slow

UNAVAILABLE = {"error": "Service unavailable"}
# Enough to fill what a 2 MB tmpfs has left once a filler file took the rest (the WAL's
# spare room), with ~2 KB a message; the loop stops at the first refusal.
MAX_MESSAGES = 2000


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for the test (root only), unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> None:
    """Write a file until the disk it is on has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 1):
            with suppress(OSError):
                while os.write(fd, b"\0" * chunk):
                    pass
    finally:
        os.close(fd)


def is_unavailable(answer: requests.Response) -> bool:
    """A JSON 503 in the chat API's own error format."""
    return (
        answer.status_code == 503
        and answer.headers["Content-Type"].startswith("application/json")
        and answer.json() == UNAVAILABLE
    )


def test_full_disk_answers_json_503_keeps_reads_and_recovers(small_disk: Path) -> None:
    db = small_disk / "sim.sqlite3"
    served = Served("--db", str(db))
    answered: list[str] = []
    try:
        assert post(served.api, new_message("full-a", "before the disk filled")).status_code == 200
        answered.append("before the disk filled")
        fill(small_disk / "filler")
        refused = None
        for i in range(MAX_MESSAGES):
            text = f"full-{i}-" + "x" * 2000
            answer = post(served.api, new_message("full-a", text))
            if answer.status_code != 200:
                refused = answer
                break
            answered.append(text)
        assert refused is not None, f"{MAX_MESSAGES} messages fit on a full 2 MB disk"
        assert is_unavailable(refused), (refused.status_code, refused.text[:300])

        # What needs no write is still answered, in the contract's own bodies.
        task = post(served.api, get_task("full-a"))
        assert task.status_code == 200, task.text[:300]
        assert task.json()["data"]["number"] > 0
        bad_token = post(served.api, {**get_task("full-a"), "planfix_token": "0" * 32})
        assert (bad_token.status_code, bad_token.json()) == (401, {"error": "Invalid token"})
        bad_cmd = post(served.api, {**get_task("full-a"), "cmd": "noSuchCommand"})
        assert (bad_cmd.status_code, bad_cmd.json()) == (400, {"error": "Invalid parameters"})
        for path in ("/api/v1/status", "/api/v1/tasks", "/api/v1/journal"):
            assert requests.get(served.url + path, timeout=30).status_code == 200, path
        still_full = post(served.api, new_message("full-b", "while still full"))
        assert is_unavailable(still_full), (still_full.status_code, still_full.text[:300])

        # Space returns: writes succeed again without a restart.
        (small_disk / "filler").unlink()
        again = post(served.api, new_message("full-a", "after space returned"))
        assert again.status_code == 200, again.text[:300]
        answered.append("after space returned")
    finally:
        served.stop()
        forget_sessions()
    assert "database or disk is full" in served.stderr
    assert "Traceback" not in served.stderr, served.stderr[-3000:]

    restarted = Served("--db", str(db))
    restarted.stop()
    forget_sessions()
    kept = stored(db)
    assert [text for text in answered if text not in kept] == []


def delete(db: Path) -> None:
    """The --db file is removed (its WAL stays)."""
    db.unlink()


def replace(db: Path) -> None:
    """Another file takes the --db file's name (a copy: same bytes, another inode)."""
    shutil.copyfile(db, db.with_suffix(".copy"))
    os.replace(db.with_suffix(".copy"), db)


def overwrite_pages(db: Path) -> None:
    """Every page after the first is overwritten with garbage, in place."""
    size = db.stat().st_size
    with db.open("r+b") as file:
        file.seek(4096)
        file.write(b"\xa5" * (size - 4096))


@pytest.mark.parametrize(
    ("damage", "logged"),
    [
        (delete, "deleted"),
        (replace, "replaced"),
        (overwrite_pages, "malformed"),
    ],
)
def test_damaged_db_file_is_refused_with_503_and_logged(
    tmp_path: Path, damage: Callable[[Path], None], logged: str
) -> None:
    db = tmp_path / "sim.sqlite3"
    served = Served("--db", str(db))
    try:
        for i in range(60):  # enough pages that some live only in the main file
            answer = post(served.api, new_message(f"chat-{i % 7}", f"m{i}-" + "y" * 800))
            assert answer.status_code == 200
        # Pages reach the main file (a checkpoint) before the damage, as over time they do.
        assert requests.get(served.url + "/api/v1/tasks", timeout=30).status_code == 200
        damage(db)
        write = post(served.api, new_message("chat-1", "after the damage"))
        assert is_unavailable(write), (write.status_code, write.text[:300])
        read = post(served.api, get_task("chat-1"))
        assert is_unavailable(read), (read.status_code, read.text[:300])
        control = requests.get(served.url + "/api/v1/tasks", timeout=30)
        assert control.status_code == 503, control.text[:300]
        assert control.json()["error"] == UNAVAILABLE["error"]
        assert logged in control.json()["detail"]
    finally:
        served.stop()
        forget_sessions()
    assert logged in served.stderr
    assert "Traceback" not in served.stderr, served.stderr[-3000:]


def test_event_stream_ends_cleanly_when_the_db_file_is_deleted(tmp_path: Path) -> None:
    db = tmp_path / "sim.sqlite3"
    served = Served("--db", str(db))
    try:
        stream = requests.get(served.url + "/api/v1/events?ping=0.2", stream=True, timeout=30)
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines).startswith(b"retry:")  # the stream is open
        db.unlink()
        assert is_unavailable(post(served.api, new_message("sse", "after the delete")))
        # The stream ends (the browser reconnects and meets the 503) instead of dying mid-way
        # with a traceback; bounded by the read timeout.
        rest = list(lines)
        assert b"".join(rest).count(b"data:") == 0
        again = requests.get(served.url + "/api/v1/events", timeout=30)
        assert again.status_code == 503
    finally:
        served.stop()
        forget_sessions()
    assert "deleted" in served.stderr
    assert "Traceback" not in served.stderr, served.stderr[-3000:]
