"""Live events over SSE and `POST /api/v1/wait`, over real HTTP on loopback."""

from __future__ import annotations

import http.client
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import pytest

from simulator.clients.http import Answer, post_form, request_json
from simulator.runtime import runtime
from simulator.serving.live import LiveServer
from simulator.store import ExchangeRecord, Store
from simulator.web.hub import Hub
from tests.conftest import PLANFIX_TOKEN


@dataclass(frozen=True)
class Frame:
    """One SSE event as a client parses it."""

    id: int
    kind: str
    data: dict[str, Any]


class SSEClient:
    """A minimal EventSource: one HTTP connection, frames parsed line by line."""

    def __init__(self, base_url: str, path: str = "/api/v1/events", **headers: str) -> None:
        parts = urlsplit(base_url)
        assert parts.hostname is not None
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self.conn.request("GET", path, headers=headers)
        self.response = self.conn.getresponse()
        self.comments: list[str] = []
        self.retry: int | None = None

    def next_frame(self) -> Frame:
        """The next event (comments and retry lines are kept aside); fails after 10 s."""
        fields: dict[str, str] = {}
        while True:
            raw = self.response.readline()
            if raw == b"":
                raise EOFError("the server ended the stream")
            line = raw.decode("utf-8").rstrip("\n")
            if line == "":
                if "data" in fields:
                    return Frame(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(": ")
            if name == "retry":
                self.retry = int(value)
            else:
                fields[name] = value

    def comments_until(self, text: str, count: int) -> list[str]:
        """Read a quiet stream until `count` comments `text` have come; all comments so far."""
        while self.comments.count(text) < count:
            raw = self.response.readline()
            if raw == b"":
                raise EOFError("the server ended the stream")
            line = raw.decode("utf-8").rstrip("\n")
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line.startswith("retry: "):
                self.retry = int(line.split(": ", 1)[1])
            else:
                assert line == "", f"an event on a quiet stream: {line!r}"
        return self.comments

    def close(self) -> None:
        """Hang up."""
        self.response.close()
        self.conn.close()

    def __enter__(self) -> SSEClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def send_message(
    base_url: str, chat_id: str, text: str, token: str = PLANFIX_TOKEN, **extra: str
) -> Answer:
    """A customer message to /webchat/api, as an integration sends it."""
    form = [
        ("cmd", "newMessage"),
        ("planfix_token", token),
        ("providerId", "shop"),
        ("chatId", chat_id),
        ("message", text),
        ("contactId", f"contact-{chat_id}"),
        ("contactName", "Ann"),
        *extra.items(),
    ]
    answer = post_form(base_url + "/webchat/api", form)
    assert answer.status == 200, answer.text
    return answer


def hub_of(server: LiveServer) -> Hub:
    """The hub behind a live server."""
    assert server.app is not None
    found: Hub = runtime(server.app).hub
    return found


def store_of(server: LiveServer) -> Store:
    """The store behind a live server."""
    assert server.app is not None
    return runtime(server.app).store


def eventually(condition: Callable[[], bool], within: float = 10.0) -> bool:
    """Poll `condition` until it holds or `within` seconds pass (a wait, not a timing claim)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def message_frames(client: SSEClient, count: int) -> list[Frame]:
    """Frames until `count` customer messages have been seen."""
    seen: list[Frame] = []
    while sum(f.kind == "message.in" for f in seen) < count:
        seen.append(client.next_frame())
    return seen


def stored_event_ids(server: LiveServer, after: int) -> list[int]:
    """Ids of the stored events after `after`."""
    return [e.id for e in store_of(server).events_after(after, limit=10_000)]


# -- the stream -----------------------------------------------------------------------------


def test_stream_is_event_stream_and_starts_at_the_newest_event(live_server: LiveServer) -> None:
    send_message(live_server.url, "old", "before anyone listened")
    newest = store_of(live_server).last_event_id()
    with SSEClient(live_server.url) as client:
        assert client.response.status == 200
        assert client.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        assert client.response.getheader("Cache-Control") == "no-cache"
        assert client.response.getheader("X-Accel-Buffering") == "no"
        send_message(live_server.url, "new", "after")
        first = client.next_frame()
    assert first.id == newest + 1
    assert client.retry == 1000
    assert client.comments[0] == "connected"


def test_events_arrive_in_order_with_kind_and_data(live_server: LiveServer) -> None:
    with SSEClient(live_server.url) as client:
        for text in ("one", "two", "three"):
            send_message(live_server.url, "c1", text)
        frames = message_frames(client, 3)
    ids = [f.id for f in frames]
    assert ids == sorted(ids)
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # nothing skipped
    assert [f.data["data"]["text"] for f in frames if f.kind == "message.in"] == [
        "one",
        "two",
        "three",
    ]
    kinds = [f.kind for f in frames]
    assert kinds[:3] == ["contact.created", "task.created", "message.in"]
    for f in frames:
        assert f.data["id"] == f.id
        assert f.data["kind"] == f.kind
        assert set(f.data) == {"id", "ts", "integration_id", "kind", "data"}


@pytest.mark.parametrize("how", ["header", "query"])
def test_reconnecting_with_last_event_id_gets_exactly_the_missed_events(
    live_server: LiveServer, how: str
) -> None:
    with SSEClient(live_server.url) as client:
        send_message(live_server.url, "c1", "seen")
        last_seen = message_frames(client, 1)[-1].id
    for text in ("missed 1", "missed 2"):
        send_message(live_server.url, "c1", text)
    missed = stored_event_ids(live_server, last_seen)
    assert len(missed) >= 2

    if how == "header":
        resumed = SSEClient(live_server.url, **{"Last-Event-ID": str(last_seen)})
    else:
        resumed = SSEClient(live_server.url, f"/api/v1/events?last_event_id={last_seen}")
    with resumed:
        got = [resumed.next_frame() for _ in missed]
        # Nothing extra follows: the next frame is the first one of a fresh exchange.
        before_marker = store_of(live_server).last_event_id()
        send_message(live_server.url, "c1", "marker")
        after = resumed.next_frame()
    assert [f.id for f in got] == missed
    assert after.id == before_marker + 1
    assert [f.data["data"]["text"] for f in got if f.kind == "message.in"] == [
        "missed 1",
        "missed 2",
    ]


def test_last_event_id_zero_replays_every_stored_event(live_server: LiveServer) -> None:
    send_message(live_server.url, "c1", "hello")
    stored = stored_event_ids(live_server, 0)
    with SSEClient(live_server.url, "/api/v1/events?last_event_id=0") as client:
        got = [client.next_frame().id for _ in stored]
    assert got == stored


def test_last_event_id_from_another_database_starts_from_now(live_server: LiveServer) -> None:
    newest = store_of(live_server).last_event_id()
    with SSEClient(live_server.url, **{"Last-Event-ID": str(newest + 1000)}) as client:
        send_message(live_server.url, "c1", "hello")
        assert client.next_frame().id == newest + 1


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("?last_event_id=abc", {}, 400),
        ("?last_event_id=-1", {}, 400),
        ("", {"Last-Event-ID": "x"}, 400),
        ("?ping=0", {}, 400),
        ("?ping=soon", {}, 400),
        ("?integration=nobody", {}, 404),
    ],
)
def test_bad_stream_requests_get_a_json_error(
    live_server: LiveServer, query: str, headers: dict[str, str], status: int
) -> None:
    answer = request_json("GET", f"{live_server.url}/api/v1/events{query}", headers=headers)
    assert answer.status == status
    assert "error" in answer.json()


def test_integration_filter_sends_only_that_integrations_events(live_server: LiveServer) -> None:
    created = request_json(
        "POST", live_server.url + "/api/v1/integrations", {"name": "second"}
    ).json()
    for ref in ("second", str(created["id"])):
        with SSEClient(live_server.url, f"/api/v1/events?integration={ref}") as client:
            send_message(live_server.url, f"default-{ref}", "for the default integration")
            send_message(
                live_server.url, f"second-{ref}", "for the second", token=created["planfix_token"]
            )
            frames = message_frames(client, 1)
        assert {f.data["integration_id"] for f in frames} == {created["id"]}
        assert frames[-1].data["data"]["text"] == "for the second"


def test_global_events_reach_filtered_streams(live_server: LiveServer) -> None:
    with SSEClient(live_server.url, "/api/v1/events?integration=default") as client:
        assert request_json("POST", live_server.url + "/api/v1/reset").status == 200
        frame = client.next_frame()
    assert frame.kind == "reset"
    assert frame.data["integration_id"] is None


def test_many_clients_see_the_same_events(live_server: LiveServer) -> None:
    clients = [SSEClient(live_server.url) for _ in range(8)]
    try:
        assert eventually(lambda: hub_of(live_server).streams == 8)
        stats = request_json("GET", live_server.url + "/api/v1/events/stats").json()
        assert stats["streams"] == 8
        assert stats["waits"] == 0
        for text in ("a", "b"):
            send_message(live_server.url, "many", text)
        seen = [[f.id for f in message_frames(c, 2)] for c in clients]
    finally:
        for c in clients:
            c.close()
    assert all(ids == seen[0] for ids in seen)
    assert len(seen[0]) >= 4


def test_writes_of_another_process_reach_the_stream(live_server: LiveServer) -> None:
    # A second Store on the same file has its own connections and its own `changed`
    # condition, as a second worker process has: only polling can see its writes.
    other = Store(store_of(live_server).path)
    try:
        with SSEClient(live_server.url) as client:
            entry_id = other.record(
                ExchangeRecord("to_planfix", "planfix", "POST", "/webchat/api", cmd="getTask")
            )
            frame = client.next_frame()
    finally:
        other.close()
    assert frame.kind == "journal"
    assert frame.data["data"]["id"] == entry_id


def test_keep_alive_comments_flow_on_a_quiet_stream(live_server: LiveServer) -> None:
    with SSEClient(live_server.url, "/api/v1/events?ping=0.1") as client:
        pings = client.comments_until("ping", 3)
        send_message(live_server.url, "c1", "hello")
        frame = client.next_frame()  # events still flow between pings
    assert pings[0] == "connected"
    assert pings.count("ping") == 3
    assert frame.kind == "contact.created"


def test_clients_that_vanish_leave_no_stream_thread_or_connection(
    live_server: LiveServer,
) -> None:
    hub = hub_of(live_server)
    store = store_of(live_server)

    def settle() -> tuple[int, int]:
        # A request on a fresh thread closes the SQLite connections of ended threads.
        assert request_json("GET", live_server.url + "/api/v1/status").status == 200
        return threading.active_count(), store.open_connections

    assert eventually(lambda: hub.listeners == 0)
    threads_before, connections_before = settle()

    clients = [SSEClient(live_server.url, "/api/v1/events?ping=0.1") for _ in range(6)]
    assert eventually(lambda: hub.streams == 6)
    send_message(live_server.url, "c1", "hello")
    for c in clients:
        c.next_frame()
    assert threading.active_count() > threads_before
    for c in clients:
        c.close()  # no goodbye: the server only learns it when a ping fails

    assert eventually(lambda: hub.streams == 0 and hub.listeners == 0)
    assert eventually(lambda: settle() == (threads_before, connections_before))


def test_stopping_the_server_ends_open_streams() -> None:
    server = LiveServer().start()
    hub = hub_of(server)
    client = SSEClient(server.url)
    try:
        assert eventually(lambda: hub.streams == 1)
        server.stop()
        assert hub.streams == 0
        with pytest.raises(EOFError):
            client.next_frame()
    finally:
        client.close()
    server.check()


# -- waiting --------------------------------------------------------------------------------


def wait(base_url: str, body: dict[str, Any]) -> Answer:
    """POST /api/v1/wait."""
    return request_json("POST", base_url + "/api/v1/wait", body, timeout=60)


@pytest.fixture
def background() -> Iterator[Callable[[Callable[[], Any]], threading.Thread]]:
    """Run callables on threads that the test joins before it ends."""
    threads: list[threading.Thread] = []

    def start(target: Callable[[], Any]) -> threading.Thread:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.join(30)


def test_wait_returns_the_exchange_that_arrives_during_the_wait(
    live_server: LiveServer, background: Callable[[Callable[[], Any]], threading.Thread]
) -> None:
    results: list[Answer] = []
    match = {"direction": "to_planfix", "cmd": "newMessage", "fields": {"message": "ping"}}
    waiter = background(lambda: results.append(wait(live_server.url, {"match": match})))
    assert eventually(lambda: hub_of(live_server).listeners == 1)
    send_message(live_server.url, "c1", "not this one")
    send_message(live_server.url, "c1", "ping")
    waiter.join(30)

    (answer,) = results
    assert answer.status == 200
    entry = answer.json()
    assert ["message", "ping"] in entry["form"]
    journaled = request_json("GET", f"{live_server.url}/api/v1/journal/{entry['id']}").json()
    assert entry == journaled


def test_wait_sees_writes_of_another_process(
    live_server: LiveServer, background: Callable[[Callable[[], Any]], threading.Thread]
) -> None:
    results: list[Answer] = []
    match = {"cmd": "getContact", "chatId": "from-elsewhere"}
    waiter = background(lambda: results.append(wait(live_server.url, {"match": match})))
    assert eventually(lambda: hub_of(live_server).listeners == 1)
    script = (
        "import sys\n"
        "from simulator.store import ExchangeRecord, Store\n"
        "s = Store(sys.argv[1])\n"
        "s.record(ExchangeRecord('to_planfix', 'planfix', 'POST', '/webchat/api',"
        " cmd='getContact', chat_id='from-elsewhere'))\n"
        "s.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, store_of(live_server).path], check=True, timeout=60
    )
    waiter.join(30)
    (answer,) = results
    assert answer.status == 200
    assert answer.json()["chat_id"] == "from-elsewhere"


def test_wait_times_out_with_408_and_the_closest_entries(live_server: LiveServer) -> None:
    for n in range(7):
        send_message(live_server.url, f"chat-{n}", "hello")
    send_message(live_server.url, "chat-3", "almost")
    answer = wait(
        live_server.url,
        {
            "match": {"cmd": "newMessage", "chatId": "chat-3", "fields": {"message": "bye"}},
            "timeout": 0.3,
            "since": 0,
        },
    )
    assert answer.status == 408
    body = answer.json()
    assert body["error"] == "Timed out"
    assert len(body["closest"]) == 5
    # chat-3's entries meet two criteria of three; the newer one comes first.
    assert [e["chat_id"] for e in body["closest"][:2]] == ["chat-3", "chat-3"]
    assert ["message", "almost"] in body["closest"][0]["form"]
    assert body["differences"][0] == ["fields.message: expected 'bye', got 'almost'"]
    assert body["differences"][2] == [
        f"chatId: expected 'chat-3', got {body['closest'][2]['chat_id']!r}",
        "fields.message: expected 'bye', got 'hello'",
    ]


def test_wait_without_since_ignores_entries_journaled_before_the_call(
    live_server: LiveServer,
) -> None:
    send_message(live_server.url, "c1", "already here")
    match = {"fields": {"message": "already here"}}
    late = wait(live_server.url, {"match": match, "timeout": 0.2})
    assert late.status == 408
    assert late.json()["closest"] == []  # nothing at all was journaled during the wait
    replay = wait(live_server.url, {"match": match, "timeout": 0.2, "since": 0})
    assert replay.status == 200
    assert ["message", "already here"] in replay.json()["form"]


def test_wait_since_returns_the_first_match_after_that_entry(live_server: LiveServer) -> None:
    for text in ("first", "second", "third"):
        send_message(live_server.url, "c1", text)
    match = {"cmd": "newMessage", "chatId": "c1"}
    first = wait(live_server.url, {"match": match, "since": 0, "timeout": 1}).json()
    second = wait(live_server.url, {"match": match, "since": first["id"], "timeout": 1}).json()
    third = wait(live_server.url, {"match": match, "since": second["id"], "timeout": 1}).json()
    assert [dict(map(tuple, e["form"]))["message"] for e in (first, second, third)] == [
        "first",
        "second",
        "third",
    ]
    assert wait(live_server.url, {"match": match, "since": third["id"], "timeout": 0.1}).status == (
        408
    )


def test_wait_matches_integration_by_name_or_id(live_server: LiveServer) -> None:
    created = request_json(
        "POST", live_server.url + "/api/v1/integrations", {"name": "second"}
    ).json()
    send_message(live_server.url, "c1", "to default")
    send_message(live_server.url, "c1", "to second", token=created["planfix_token"])
    for ref in ("second", created["id"]):
        found = wait(
            live_server.url,
            {"match": {"integration": ref, "chatId": "c1"}, "since": 0, "timeout": 1},
        )
        assert found.status == 200
        assert ["message", "to second"] in found.json()["form"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"match": {"chat_id": "c1"}}, 400),  # a typo must not match everything
        ({"match": {"direction": "inbound"}}, 400),
        ({"match": {}, "timeout": 301}, 400),
        ({"match": {}, "timeout": -1}, 400),
        ({"match": {}, "since": "latest"}, 400),
        ({"match": {"fields": {"message": 1}}}, 400),
        ({"match": {}, "extra": True}, 400),
        ({"match": {"integration": "nobody"}}, 404),
    ],
)
def test_bad_wait_requests_are_refused_at_once(
    live_server: LiveServer, body: dict[str, Any], status: int
) -> None:
    answer = wait(live_server.url, body)
    assert answer.status == status
    assert "error" in answer.json()
    assert hub_of(live_server).listeners == 0


def test_wait_holds_no_transaction_while_it_sleeps(
    live_server: LiveServer, background: Callable[[Callable[[], Any]], threading.Thread]
) -> None:
    results: list[Answer] = []
    match = {"fields": {"message": "never"}}
    background(lambda: results.append(wait(live_server.url, {"match": match, "timeout": 30})))
    assert eventually(lambda: hub_of(live_server).listeners == 1)
    # A checkpoint that must wait for every reader completes: the waiter keeps no read
    # snapshot (no transaction) open while it sleeps.
    db = sqlite3.connect(store_of(live_server).path, timeout=5)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        db.close()
    assert busy == 0
    send_message(live_server.url, "c1", "never")
    assert eventually(lambda: len(results) == 1)
    assert results[0].status == 200


def test_a_reset_during_a_wait_does_not_hide_later_entries(
    live_server: LiveServer, background: Callable[[Callable[[], Any]], threading.Thread]
) -> None:
    send_message(live_server.url, "c1", "before the reset")
    results: list[Answer] = []
    match = {"fields": {"message": "after the reset"}}
    background(lambda: results.append(wait(live_server.url, {"match": match, "timeout": 30})))
    assert eventually(lambda: hub_of(live_server).listeners == 1)
    assert request_json("POST", live_server.url + "/api/v1/reset").status == 200
    send_message(live_server.url, "c1", "after the reset")
    assert eventually(lambda: len(results) == 1)
    assert results[0].status == 200


def test_journal_ids_are_never_reused_so_since_stays_meaningful(live_server: LiveServer) -> None:
    send_message(live_server.url, "c1", "one")
    before = request_json("GET", live_server.url + "/api/v1/journal").json()[-1]["id"]
    assert request_json("POST", live_server.url + "/api/v1/reset").status == 200
    send_message(live_server.url, "c1", "two")
    after = request_json("GET", live_server.url + "/api/v1/journal").json()[-1]["id"]
    assert after > before


def test_a_filtered_stream_keeps_pinging_while_other_integrations_are_busy(
    live_server: LiveServer,
) -> None:
    created = request_json(
        "POST", live_server.url + "/api/v1/integrations", {"name": "quiet"}
    ).json()
    with SSEClient(live_server.url, f"/api/v1/events?integration={created['id']}&ping=0.2") as c:
        stop = threading.Event()

        def busy() -> None:
            n = 0
            while not stop.is_set():
                send_message(live_server.url, "busy", f"message {n}")
                n += 1

        worker = threading.Thread(target=busy, daemon=True)
        worker.start()
        try:
            comments = c.comments_until("ping", 2)
        finally:
            stop.set()
            worker.join(30)
    assert comments.count("ping") == 2
