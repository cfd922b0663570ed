"""Bounds the server puts on its clients, shared by the server's set-up and its worker class."""

from __future__ import annotations

# A request's head and body must arrive within this many seconds of its first byte (of the
# connection, for its first request); a client that trickles them is answered 408.
READ_TIMEOUT_SECONDS = 10.0
