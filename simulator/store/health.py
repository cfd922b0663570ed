"""The database file's health: a deleted, replaced, full or corrupt file answers 503, never a 500.

SQLite errors that blame the file become `StorageUnavailable`; a file that can no longer be
trusted (corrupt, replaced, deleted) makes the store refuse everything until a restart.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import suppress

from simulator.errors import StorageUnavailable

log = logging.getLogger("simulator")

# SQLite's primary result codes that blame the file, not the request: the store answers 503.
_STORAGE_CODES = frozenset(
    {
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOTADB,
    }
)
# Of those, the ones no retry cures: the store refuses everything until it is restarted.
_BROKEN_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class FileHealth:
    """What the store knows about its file, and the checks each transaction makes."""

    path: str
    # `_identity` is the (device, inode) this store opened: another one at the path means the
    # file was deleted or replaced. `_stamp` is the main file's (mtime, size) as this process
    # last wrote or verified it: a change made by anyone else gets its pages checked.
    # `_broken` is sticky (a restart cures it), `_failing` is not (space may return).
    _identity: tuple[int, int] | None = None
    _stamp: tuple[int, int] = (0, 0)
    _broken = ""
    _failing = ""

    def _storage_failure(self, exc: sqlite3.Error) -> StorageUnavailable | None:
        """The 503 an SQLite error stands for when the file is at fault (logged once)."""
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or code & 0xFF not in _STORAGE_CODES:
            return None  # a bug or a constraint: not the disk's doing
        reason = f"{exc} ({getattr(exc, 'sqlite_errorname', code)})"
        if code & 0xFF in _BROKEN_CODES:
            return self._break(reason)
        if not self._failing:
            log.error("database %s cannot be written: %s; writes answer 503", self.path, reason)
        self._failing = reason
        return StorageUnavailable(reason)

    def _break(self, reason: str) -> StorageUnavailable:
        """Refuse every later call: the file can no longer be trusted (logged once)."""
        if not self._broken:
            self._broken = reason
            log.error(
                "database %s: %s; every request answers 503 until the simulator is restarted"
                " on a sound file",
                self.path,
                reason,
            )
        return StorageUnavailable(self._broken)

    def _check_file(self) -> os.stat_result | None:
        """Raise StorageUnavailable unless the path still names the file this store opened."""
        # One stat (~2 µs) per transaction: the hot path commits for many requests at once.
        if self._broken:
            raise StorageUnavailable(self._broken)
        if self._identity is None:
            return None  # still creating it
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            raise self._break("the file was deleted while serving") from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot stat the file: {exc}") from exc
        if (found.st_dev, found.st_ino) != self._identity:
            raise self._break("the file was replaced by another file while serving")
        return found

    def _verify(self, db: sqlite3.Connection, found: os.stat_result) -> None:
        """Check the pages when someone other than this process changed the main file."""
        stamp = (found.st_mtime_ns, found.st_size)
        if stamp == self._stamp:
            return
        # Another process wrote it: a worker's checkpoint, or damage. SQLite would go on
        # using its cached pages, so drop them and read every page back (~15 ms per 20 MB).
        db.execute("PRAGMA shrink_memory")
        problem = str(db.execute("PRAGMA quick_check(1)").fetchone()[0])
        if problem != "ok":
            problem = " ".join(problem.replace("*** in database main ***", "").split())
            raise self._break(f"database disk image is malformed: {problem}")
        self._stamp = stamp

    def _wrote(self) -> None:
        """After a commit: space is back if it was gone, and the file's changes are ours."""
        if self._failing:
            log.warning("database %s: writes succeed again", self.path)
            self._failing = ""
        if self._identity is not None:
            # An automatic checkpoint of this commit changed the main file: not damage.
            with suppress(OSError):
                found = os.stat(self.path)
                self._stamp = (found.st_mtime_ns, found.st_size)
