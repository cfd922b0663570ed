"""The scenario runner's control calls: the typed control client, each call kept for the report."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from simulator.clients import Answer, ControlClient, ControlError
from simulator.scenarios.results import Exchange, StepError


class RecordingControl(ControlClient):
    """The typed control client, each call also kept as an `Exchange` for the failure report."""

    def __init__(
        self, base_url: str, admin_token: str | None, timeout: float, record: list[Exchange] | None
    ) -> None:
        super().__init__(base_url, admin_token, timeout=timeout)
        self.record = record

    def raw(
        self,
        method: str,
        path: str,
        data: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """One control-API call, recorded."""
        answer = super().raw(method, path, data, query=query, timeout=timeout)
        if self.record is not None:
            params = {k: str(v) for k, v in (query or {}).items() if v is not None}
            url = self.base_url + path + ("?" + urlencode(params) if params else "")
            request = "" if data is None else json.dumps(data, ensure_ascii=False)
            self.record.append(
                Exchange(method, url, request, answer.status, answer.text, answer.error)
            )
        return answer


def refused(exc: ControlError) -> StepError:
    """A control call that failed, as the step error the report shows."""
    answer = exc.answer
    problem = answer.error or f"answered {answer.status}: {answer.text[:500].strip()}"
    return StepError(f"{exc.method} {exc.path}: {problem}")
