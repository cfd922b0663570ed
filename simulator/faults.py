"""Chaos on demand: planned faults for `/webchat/api` ("planfix") and `/fake-chat/webhook`.

A plan lives in the store with its integration, so counts and seeded draws are exact across
worker processes: the draw happens inside the store's write transaction (`Store.take_fault`),
and the `random.Random` state is kept in the plan itself.
"""

from __future__ import annotations

import json
import random
import secrets
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

from simulator.errors import BadRequest
from simulator.store import Store
from simulator.wire import ORIGIN_HEADER, header

SIDES = ("planfix", "fake_chat")
STATUSES = (400, 401, 429, 500, 503)
# Sent by the simulator with its own calls, so a face that injects a fault into a call the
# simulator made to itself can tell the sender, which is the one that journals the exchange.
REQUEST_HEADER = "X-Planfix-Sim-Request"

FAULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "status": {"enum": list(STATUSES)},
        "malformed": {"type": "boolean"},
        "latency_ms": {"type": "integer", "minimum": 0, "maximum": 600_000},
        "drop": {"type": "boolean"},
        "count": {"type": "integer", "minimum": 1},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "seed": {"type": "integer"},
    },
}
FAULTS_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {side: {"oneOf": [FAULT_SCHEMA, {"type": "null"}]} for side in SIDES},
}

# What each injected status answers: the contract's own bodies where it has them.
STATUS_BODIES: dict[int, dict[str, str]] = {
    400: {"error": "Invalid parameters"},
    401: {"error": "Invalid token"},
    429: {"error": "Too many requests"},
    500: {"error": "Internal server error"},
    503: {"error": "Service unavailable"},
}
# Truncated JSON: what a crashing or half-written answer looks like.
MALFORMED_BODY = b'{"error": "Invalid par'
_EFFECTS = ("status", "malformed", "latency_ms", "drop")


@dataclass(frozen=True)
class Injected:
    """The fault chosen for one call."""

    status: int | None = None
    malformed: bool = False
    latency_ms: int = 0
    drop: bool = False

    @property
    def label(self) -> str:
        """How the journal's `fault` field names it, e.g. `latency=200ms+status=503`."""
        parts: list[str] = []
        if self.latency_ms:
            parts.append(f"latency={self.latency_ms}ms")
        if self.drop:
            parts.append("drop")
        else:
            if self.status is not None:
                parts.append(f"status={self.status}")
            if self.malformed:
                parts.append("malformed")
        return "+".join(parts)


def new_plan(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored plan from a `Fault` of the control API (already schema-checked)."""
    if not any(spec.get(k) for k in _EFFECTS):
        raise BadRequest("a fault needs at least one of status, malformed, latency_ms, drop")
    plan: dict[str, Any] = {k: v for k, v in spec.items() if v is not None}
    plan["calls"] = 0
    plan["injected"] = 0
    if "count" in plan:
        plan["remaining"] = plan["count"]
    if "probability" in plan:
        # Without a seed, one is chosen and shown, so any run can be replayed.
        plan.setdefault("seed", secrets.randbelow(2**32))
        rng = random.Random(plan["seed"])  # noqa: S311 - reproducible chaos, not secrets
        plan["rng"] = json.loads(json.dumps(rng.getstate()))
    return plan


def public_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan as `GET …/faults` shows it (the RNG state is internal)."""
    return {k: v for k, v in plan.items() if k != "rng"}


def decide(plan: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Whether this call gets the fault: pure, given the plan's counters and RNG state."""
    kept = dict(plan)
    kept["calls"] = kept.get("calls", 0) + 1
    remaining = kept.get("remaining")
    if remaining is not None and remaining <= 0:
        return kept, None
    if "probability" in kept:
        rng = random.Random()  # noqa: S311 - reproducible chaos, not secrets
        version, internal, gauss = kept["rng"]
        rng.setstate((version, tuple(internal), gauss))
        hit = rng.random() < kept["probability"]
        kept["rng"] = [version, list(rng.getstate()[1]), gauss]
        if not hit:
            return kept, None
    if remaining is not None:
        kept["remaining"] = remaining - 1
    kept["injected"] = kept.get("injected", 0) + 1
    return kept, {k: kept[k] for k in _EFFECTS if k in kept}


def take(store: Store, integration_id: int, side: str) -> Injected | None:
    """The fault to inject into this call on `side`, consuming one use; None when none."""
    chosen = store.take_fault(integration_id, side, decide)
    if chosen is None:
        return None
    return Injected(
        status=chosen.get("status"),
        malformed=bool(chosen.get("malformed")),
        latency_ms=int(chosen.get("latency_ms") or 0),
        drop=bool(chosen.get("drop")),
    )


def dropped_response(environ: Mapping[str, Any]) -> Response:
    """A response that closes the connection instead of answering.

    Werkzeug's server and gunicorn put the socket in the environ (`werkzeug.socket`,
    `gunicorn.socket`). The socket is shut when the server starts sending the body, that is
    after the app has journaled the exchange; the server's write then fails with EPIPE, which
    both treat as a client gone. Servers without such a key get a ConnectionAbortedError,
    answered as their errors are.
    """
    sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
    if sock is None:
        raise ConnectionAbortedError("fault: drop (the server exposes no socket)")

    def body() -> Iterator[bytes]:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        yield b""

    return Response(body(), status=200)


def apply(fault: Injected, store: Store, environ: Mapping[str, Any]) -> Response | None:
    """Wait out the latency, then the answer the fault gives (None: answer normally)."""
    if fault.latency_ms:
        time.sleep(fault.latency_ms / 1000)
    request_id = header(environ, REQUEST_HEADER)
    if request_id and header(environ, ORIGIN_HEADER) == store.instance_id:
        store.put_fault_mark(request_id, fault.label)
    if fault.drop:
        return dropped_response(environ)
    if fault.status is None and not fault.malformed:
        return None
    status = fault.status or 200
    body = MALFORMED_BODY if fault.malformed else json.dumps(STATUS_BODIES[status]).encode()
    return Response(body, status=status, mimetype="application/json")
