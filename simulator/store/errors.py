"""Why a database cannot be opened: reported at start, before anything is served."""

from __future__ import annotations


class CannotOpen(Exception):
    """The database cannot be opened or upgraded (missing directory, not a database, …)."""


class SchemaTooNew(CannotOpen):
    """The database was written by a newer release: opening it could corrupt it."""
