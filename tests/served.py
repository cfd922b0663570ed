"""`planfix-sim serve` as a real process for tests over real HTTP, and raw-socket helpers."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from tests.conftest import PLANFIX_TOKEN


class Served:
    """`planfix-sim serve` in its own process group, and the base URL it printed."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulator.cli", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self.banner: list[str] = []
        self.stderr = ""
        # Read the server's log while it runs: a full pipe would stall the server, not the test.
        self.log: list[str] = []
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.banner.append(line.rstrip("\n"))
            found = re.search(r"serving on (http://127\.0\.0\.1:(\d+))", line)
            if found:
                self.url = found.group(1)
                self.port = int(found.group(2))
                self.api = self.url + "/webchat/api"
                self._wait_for_workers()
                return
        self.kill()
        raise AssertionError(f"serve printed no URL: {self.banner}")

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def log_lines(self, marker: str, timeout: float = 30) -> list[str]:
        """The log lines holding `marker`, once at least one has arrived (or [] at the timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in list(self.log) if marker in line]
            if found:
                return found
            time.sleep(0.02)
        return []

    def _wait_for_workers(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/api/v1/status", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.05)
        raise AssertionError("workers never answered")

    def stop(self) -> int:
        """SIGTERM, wait, and return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self._close_pipes()
        self.stderr = "".join(line + "\n" for line in self.log)
        return self.proc.returncode

    def kill(self) -> None:
        """kill -9 of the master and its workers at once, as a crash would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._close_pipes()

    def _close_pipes(self) -> None:
        # stderr is read to its end by the drainer; nothing after the banner matters on stdout.
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.proc.stdout.close()
        self._drainer.join(timeout=30)
        self.proc.stderr.close()


def new_message(chat: str, text: str) -> dict[str, str]:
    """A newMessage form of chat `chat` (its contact named after it)."""
    return {
        "cmd": "newMessage",
        "providerId": "rel",
        "chatId": chat,
        "planfix_token": PLANFIX_TOKEN,
        "message": text,
        "contactId": f"u-{chat}",
        "contactName": "Reliable",
    }


def get_task(chat: str) -> dict[str, str]:
    """A getTask form of chat `chat`."""
    return {"cmd": "getTask", "providerId": "rel", "chatId": chat, "planfix_token": PLANFIX_TOKEN}


def stored(db: Path) -> dict[str, int]:
    """Message text → task number, read straight from the SQLite file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return dict(conn.execute("SELECT text, task_number FROM messages").fetchall())
    finally:
        conn.close()


_local = threading.local()


def post(url: str, form: dict[str, str]) -> requests.Response:
    """POST with one kept-alive session per client thread."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session.post(url, data=form, timeout=60)


def raw_exchange(port: int, data: bytes, timeout: float = 30) -> bytes:
    """Send raw bytes, read until the server closes or a whole answer arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        got = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
            head, sep, body = got.partition(b"\r\n\r\n")
            found = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if sep and found and len(body) >= int(found.group(1)):
                break
        return got


def forget_sessions() -> None:
    """Drop every client thread's kept-alive session (they point at a server that is gone)."""
    _local.__dict__.clear()
