"""Limits both the server setup (production.py) and the worker (gthread.py) read."""

# A request's head and body must arrive within this many seconds of its first byte (of the
# connection, for its first request); a client that trickles them is answered 408.
READ_TIMEOUT_SECONDS = 10.0
