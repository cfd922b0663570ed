"""What one app instance holds: settings and store, reached through `app.extensions`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app

from simulator.config.settings import Settings
from simulator.store import Store

EXTENSION = "planfix_simulator"


@dataclass
class Runtime:
    """The per-app state: no module-level globals, so several apps can live in one process."""

    settings: Settings
    store: Store
    temp_dir: str | None = None
    services: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """The simulator's own URL, as its clients reach it."""
        return self.settings.base_url


def runtime(app: Flask | None = None) -> Runtime:
    """The runtime of `app`, or of the app handling the current request."""
    target = app if app is not None else current_app
    found: Runtime = target.extensions[EXTENSION]
    return found
