"""The hub that wakes an app's live event streams and waiters when the store changes.

Writes of this process wake it at once through `store.changed`; writes of other processes are
seen by checking SQLite's `data_version` every `poll_seconds` (a few milliseconds: it reads no
table), and reading the newest event id only when it moved. Its watcher thread runs only while
someone listens.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from simulator.errors import StorageUnavailable
from simulator.store import Store

# Another worker's event reaches a waiter within this (the bound is 10 ms); a check
# costs microseconds, and runs only while someone listens.
POLL_SECONDS = 0.004


class Hub:
    """Wakes the live streams and waiters of one app when the store changes; ends them at stop."""

    def __init__(self, store: Store, poll_seconds: float = POLL_SECONDS) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self._cond = threading.Condition()
        self._version = 0
        self._listeners = 0
        self._streams = 0
        self._stopping = False
        self._watcher: threading.Thread | None = None

    @property
    def streams(self) -> int:
        """Open SSE streams of this process."""
        with self._cond:
            return self._streams

    @property
    def listeners(self) -> int:
        """Open streams plus pending waits."""
        with self._cond:
            return self._listeners

    @property
    def stopping(self) -> bool:
        """Whether the app is shutting down."""
        with self._cond:
            return self._stopping

    @property
    def version(self) -> int:
        """Changes seen so far; read it before querying, then `wait` for it to move."""
        with self._cond:
            return self._version

    @contextmanager
    def listening(self, *, stream: bool = False) -> Iterator[None]:
        """Count a listener for its lifetime; the first one starts the watcher thread."""
        with self._cond:
            self._listeners += 1
            self._streams += int(stream)
            if self._watcher is None and not self._stopping:
                self._watcher = threading.Thread(
                    target=self._watch, name="planfix-sim:events-hub", daemon=True
                )
                self._watcher.start()
        try:
            yield
        finally:
            with self._cond:
                self._listeners -= 1
                self._streams -= int(stream)
                self._cond.notify_all()

    def wait(self, version: int, timeout: float) -> int:
        """Sleep until the version moves past `version`, `timeout` passes or the hub stops."""
        with self._cond:
            if self._version == version and not self._stopping:
                self._cond.wait(max(timeout, 0.0))
            return self._version

    def _watch(self) -> None:
        store = self.store
        changed = store.changed
        # None: the first pass always wakes the listeners, covering a write that landed
        # between a listener's first query and this thread's start.
        seen: int | None = None
        stamp: int | None = None  # data_version when `seen` was read
        while True:
            with self._cond:
                if self._listeners == 0 or self._stopping:
                    self._watcher = None
                    return
            # Read under the store's condition: a write committed after this read cannot
            # notify before we wait, so none is missed (other processes: the poll finds it).
            with changed:
                try:
                    # This process's writes notify `changed`; another's only move data_version.
                    now = store.data_version()
                    newest = seen if now == stamp else store.last_event_id()
                    stamp = now
                except StorageUnavailable:
                    newest, stamp = -1, None  # wake the streams: each meets the failure and ends
                if newest == seen:
                    changed.wait(self.poll_seconds)
                    continue
            seen = newest
            with self._cond:
                self._version += 1
                self._cond.notify_all()

    def stop(self, grace: float = 5.0) -> None:
        """End every stream and wait (they return at once), then let the watcher go."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            deadline = time.monotonic() + grace
            while self._listeners and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            watcher = self._watcher
        with self.store.changed:
            self.store.changed.notify_all()
        if watcher is not None:
            watcher.join(grace)
