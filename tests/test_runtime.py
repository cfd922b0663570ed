"""The runtime holds each background service in a typed slot, filled when the app is made."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from flask import Flask

from simulator.fakechat.reporter import Reporter
from simulator.planfix.delivery import DeliveryWorker
from simulator.runtime import Runtime, runtime
from simulator.web.app import close_app, create_app
from simulator.web.hub import Hub


@pytest.mark.parametrize(
    ("slot", "kind"),
    [("delivery", DeliveryWorker), ("reporter", Reporter), ("hub", Hub)],
)
def test_each_service_has_a_typed_slot(app: Flask, slot: str, kind: type) -> None:
    assert isinstance(getattr(runtime(app), slot), kind)


def test_the_runtime_has_no_string_keyed_services() -> None:
    assert "services" not in {f.name for f in dataclasses.fields(Runtime)}


def test_closing_the_app_stops_every_service_and_leaves_no_thread() -> None:
    before = set(threading.enumerate())
    app = create_app({"testing": True})
    rt = runtime(app)
    rt.reporter.submit(lambda: None)  # its thread starts on first use
    close_app(app)
    assert rt.hub.stopping
    assert rt.reporter.stopping.is_set()
    assert [t.name for t in set(threading.enumerate()) - before if t.is_alive()] == []
