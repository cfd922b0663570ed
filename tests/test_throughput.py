"""The hot paths: what each request and each wake-up costs, pinned as counts."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from simulator.store import ExchangeRecord, Store
from simulator.web.hub import Hub
from tests.served import Served, get_task, post


@pytest.fixture
def two_stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two stores on one file: each has its own connections and `changed`, as two workers do."""
    path = str(tmp_path / "shared.sqlite3")
    first = Store(path)
    second = Store(path)
    yield first, second
    second.close()
    first.close()


def test_a_write_of_another_worker_is_seen_by_the_next_cheap_check_of_the_hub(
    two_stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counts, not clocks (the figure itself is the benchmark's): while nothing changes the
    # hub reads only SQLite's data_version, every few milliseconds, and the check after
    # another worker's write wakes its listeners.
    listening, writing = two_stores
    checks: list[int] = []
    reads: list[int] = []
    data_version, last_event_id = listening.data_version, listening.last_event_id
    monkeypatch.setattr(listening, "data_version", lambda: checks.append(1) or data_version())
    monkeypatch.setattr(listening, "last_event_id", lambda: reads.append(1) or last_event_id())
    hub = Hub(listening)
    assert hub.poll_seconds <= 0.01, "the issue's bound for a cross-worker wake-up"
    try:
        with hub.listening():
            deadline = time.monotonic() + 10
            while len(checks) < 5 and time.monotonic() < deadline:
                time.sleep(0.01)
            idle_checks, idle_reads = len(checks), len(reads)
            assert idle_checks >= 5
            assert idle_reads == 1, "only the first pass reads the events table while idle"
            version = hub.version
            writing.record(ExchangeRecord("to_planfix", "planfix", "POST", "/webchat/api"))
            # The write is committed: from here the watcher's next check sees it.
            before = len(checks)
            assert hub.wait(version, 10) > version
            assert len(checks) - before <= 2, "seen by the next check, not a later one"
    finally:
        hub.stop()


def test_the_date_header_of_every_answer_is_the_current_second() -> None:
    # The server formats Date once a second, not once an answer: it must still move on.
    served = Served()
    started = datetime.now(UTC).replace(microsecond=0)
    try:
        dates = []
        for _ in range(3):
            answer = post(served.url + "/webchat/api", get_task("no-such-chat"))
            dates.append(parsedate_to_datetime(answer.headers["Date"]))
            time.sleep(0.6)
    finally:
        served.stop()
    assert all(started <= d <= datetime.now(UTC) for d in dates), dates
    assert dates[-1] > dates[0], "the header moves on with the clock"


def test_the_server_formats_the_date_header_once_a_second() -> None:
    from gunicorn import util  # type: ignore[import-untyped]

    import simulator.serving.gthread  # noqa: F401 - installs the cache

    calls = []
    real = email.utils.formatdate

    def counting(*args: object, **kwargs: object) -> str:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(email.utils, "formatdate", counting)
        texts = {util.http_date() for _ in range(1000)}
    assert len(calls) <= 2, "at most one second boundary in the loop"
    assert len(texts) == len(calls) or not calls
