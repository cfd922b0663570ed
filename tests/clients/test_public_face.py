"""`simulator.clients` is the clients' public face; the transport under it knows no typed client."""

from __future__ import annotations

import importlib

import pytest

import simulator.clients
from simulator.clients import http

PUBLIC = [
    "Answer",
    "AttachmentLike",
    "ControlClient",
    "ControlError",
    "Fault",
    "PlanfixAnswer",
    "PlanfixClient",
    "WaitTimeout",
    "encode_form",
    "parse_json",
    "post_form",
    "request_json",
    "send",
    "wire_name",
]


@pytest.mark.parametrize("name", PUBLIC)
def test_the_package_exports(name: str) -> None:
    assert name in simulator.clients.__all__
    assert getattr(simulator.clients, name) is not None


@pytest.mark.parametrize("module", ["simulator.clients", "simulator.clients.http"])
def test_no_module_resolves_names_lazily(module: str) -> None:
    assert "__getattr__" not in vars(importlib.import_module(module))


@pytest.mark.parametrize("typed", ["ControlClient", "PlanfixClient", "PlanfixAnswer", "Fault"])
def test_the_transport_holds_no_typed_client(typed: str) -> None:
    assert typed not in vars(http)
