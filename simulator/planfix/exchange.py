"""The one builder of journal entries: a request, its form and what came back, ready to record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from simulator.contract import Form, Note
from simulator.planfix import exchange_log
from simulator.store import ExchangeRecord

DROPPED = "connection dropped (fault)"


def exchange(
    direction: str,
    party: str,
    method: str,
    url: str,
    form: Form,
    *,
    status: int | None,
    body: str = "",
    duration_ms: float = 0.0,
    headers: Mapping[str, str] | None = None,
    chat_id: str = "",
    notes: Sequence[Note] = (),
    fault: str = "",
    error: str = "",
    dropped: bool = False,
    integration_id: int | None = None,
    delivery_id: int | None = None,
) -> ExchangeRecord:
    """A journal entry (and its log line); cmd and chatId from the form unless given."""
    record = ExchangeRecord(
        direction=direction,
        party=party,
        method=method,
        url=url,
        cmd=form.get("cmd") or "",
        chat_id=chat_id or form.get("chatId") or "",
        form=form.as_list(),
        request_headers=dict(headers or {}),
        # A dropped connection got no answer, whatever the view had made of the request.
        status=None if dropped else status,
        response_body="" if dropped else body,
        duration_ms=duration_ms,
        notes=[n.as_dict() for n in notes],
        fault=fault,
        error=DROPPED if dropped else error,
        integration_id=integration_id,
        delivery_id=delivery_id,
    )
    exchange_log.emit(record)
    return record
