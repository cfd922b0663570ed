"""What one app instance holds: settings, store and its background services.

Reached through `app.extensions`; each service has a typed slot, made here when the runtime is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app

from simulator.config.settings import Settings
from simulator.fakechat.reporter import Reporter
from simulator.planfix.delivery import DeliveryWorker
from simulator.store import Store
from simulator.web.hub import Hub

EXTENSION = "planfix_simulator"


@dataclass
class Runtime:
    """The per-app state: no module-level globals, so several apps can live in one process."""

    settings: Settings
    store: Store
    temp_dir: str | None = None
    # The background services: the SSE hub, the delivery worker, the fake chat's reporter.
    hub: Hub = field(init=False)
    delivery: DeliveryWorker = field(init=False)
    reporter: Reporter = field(init=False)

    def __post_init__(self) -> None:
        self.hub = Hub(self.store)
        self.delivery = DeliveryWorker(self.store, lambda: self.base_url)
        self.reporter = Reporter(self.store)

    @property
    def base_url(self) -> str:
        """The simulator's own URL, as its clients reach it."""
        return self.settings.base_url

    def start_services(self) -> None:
        """Start the services that run from the beginning (the others start on first use)."""
        self.delivery.start()

    def stop_services(self) -> None:
        """Stop every background service; idempotent."""
        self.hub.stop()
        self.delivery.stop()
        self.reporter.stop()


def runtime(app: Flask | None = None) -> Runtime:
    """The runtime of `app`, or of the app handling the current request."""
    target = app if app is not None else current_app
    found: Runtime = target.extensions[EXTENSION]
    return found
