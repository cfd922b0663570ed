"""`planfix-sim fuzz`: finds planted bugs in a webhook, reproduces them, passes correct servers."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.scenarios.loader import load_file
from simulator.serving.live import LiveServer

TOKEN = "integration-secret"
Bug = Callable[[list[tuple[str, str]]], bool]


def contract_answer(pairs: list[tuple[str, str]]) -> tuple[int, dict[str, str]]:
    """A correct integration: the contract's answers to Planfix's newMessage."""
    form = dict(pairs)
    if form.get("token") != TOKEN:
        return 401, {"error": "Invalid token"}
    if form.get("cmd") != "newMessage" or not form.get("providerId") or not form.get("message"):
        return 400, {"error": "Invalid parameters"}
    chat = form.get("chatId") or ("phone-" + form.get("contactPhone", ""))
    if chat == "phone-":
        return 400, {"error": "Invalid parameters"}
    return 200, {"chatId": chat, "contactId": chat}


def webhook(bug: Bug | None = None, hang: Bug | None = None) -> ThreadingHTTPServer:
    """A webhook in a thread: correct, except for the planted `bug` (500) or `hang`."""

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
            pairs = urllib.parse.parse_qsl(raw, keep_blank_values=True)
            if hang is not None and hang(pairs):
                time.sleep(1.5)
            if bug is not None and bug(pairs):
                status, body = 500, {"error": "Internal Server Error"}
            else:
                status, body = contract_answer(pairs)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """Start webhooks; yields a function returning the webhook URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(bug: Bug | None = None, hang: Bug | None = None) -> str:
        server = webhook(bug, hang)
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/planfix?secret=s3"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def fuzz(url: str, tmp_path: Path, *extra: str) -> int:
    return main(
        ["fuzz", "--integration-url", url, "--token", TOKEN, "--out", str(tmp_path), *extra]
    )


def two_attachments(pairs: list[tuple[str, str]]) -> bool:
    return sum(1 for k, _ in pairs if k == "attachments[url]") >= 2


def astral_message(pairs: list[tuple[str, str]]) -> bool:
    # A classic: utf8 (3-byte) MySQL columns refuse emoji and other astral-plane characters.
    return any(k == "message" and any(ord(c) > 0xFFFF for c in v) for k, v in pairs)


def test_a_correct_webhook_passes(
    serve: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fuzz(serve(), tmp_path, "--examples", "80", "--seed", "1") == 0
    out = capsys.readouterr().out
    assert "OK: the contract held" in out
    assert "valid reply" in out
    assert "valid first" in out
    assert "with a wrong token" in out
    assert list(tmp_path.iterdir()) == []


def test_a_500_on_two_attachments_is_found_and_reproduced(
    serve: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = serve(bug=two_attachments)
    assert fuzz(url, tmp_path, "--examples", "100", "--seed", "4") == 1
    out = capsys.readouterr().out
    assert "FAILED [must] no_server_error: server error 500" in out
    curl = next(line for line in out.splitlines() if line.strip().startswith("curl "))
    # Shrunk to the minimum that still fails: exactly two attachments.
    assert curl.count("attachments[url]=") == 2
    assert url in curl
    assert "reproduce: planfix-sim fuzz" in out
    assert "--seed 4" in out
    scenario_file = tmp_path / "planfix-fuzz-4-no_server_error-valid-requests.yaml"
    [scenario] = load_file(scenario_file)  # the scenario schema accepts it
    assert "seed 4" in scenario.name
    capsys.readouterr()
    replay = ["--integration-url", url, "--integration-token", TOKEN]
    assert main(["run", str(scenario_file), *replay]) == 1  # replaying it hits the bug again
    assert "answer: 500" in capsys.readouterr().out


def test_a_500_on_emoji_is_found(
    serve: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fuzz(serve(bug=astral_message), tmp_path, "--examples", "100", "--seed", "11") == 1
    out = capsys.readouterr().out
    curls = [line for line in out.splitlines() if line.strip().startswith("curl ")]
    messages = [
        next(part for part in curl.split(" --data-urlencode ") if "message=" in part)
        for curl in curls
    ]
    # the emoji made it into the reproduction
    assert any(any(ord(c) > 0xFFFF for c in message) for message in messages)


def test_the_same_seed_finds_the_same_minimal_example(
    serve: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = serve(bug=two_attachments)
    runs = []
    for _ in range(2):
        assert fuzz(url, tmp_path, "--examples", "100", "--seed", "4") == 1
        out = capsys.readouterr().out
        runs.append([line for line in out.splitlines() if line.strip().startswith("curl ")])
    assert runs[0] == runs[1]


def test_a_hang_past_the_timeout_is_a_failure(
    serve: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = serve(hang=lambda pairs: "chatId" not in dict(pairs))
    code = fuzz(url, tmp_path, "--examples", "20", "--seed", "2", "--timeout", "0.3")
    assert code == 1
    assert "no answer within the 0.3 s timeout" in capsys.readouterr().out


def test_the_simulator_passes_as_planfix(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "fuzz",
            "--planfix-url",
            live_server.url + "/webchat/api",
            "--planfix-token",
            "303cb962ac59075b964b07152d234b70",
            "--max-body-bytes",
            "1048576",
            "--examples",
            "120",
            "--seed",  # the run must include a getTask whose chat it made first: no luck involved
            "1",
            # Generous: "answered within the timeout" is a check, and the suite shares 2 cores.
            "--timeout",
            "30",
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "valid getTask (chat exists)" in out


def test_the_fake_chat_passes_as_an_integration(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = live_server.url + "/fake-chat/webhook"
    token = "202cb962ac59075b964b07152d234b70"
    args = ["--examples", "80", "--out", str(tmp_path)]
    code = main(["fuzz", "--integration-url", url, "--token", token, *args])
    out = capsys.readouterr().out
    assert code == 0, out


def test_fuzz_needs_one_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", "--token", TOKEN]) == 2
    assert "give --integration-url or --planfix-url" in capsys.readouterr().err
