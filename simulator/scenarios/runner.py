"""Running scenarios: one fresh integration each, steps in order, stop at the first failure.

The fresh integration is deleted when its scenario ends unless the runner keeps it (`--keep`),
or the scenario reuses an existing one; `simulator.scenarios.integration` does both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from simulator.clients import Answer, ControlClient, ControlError, WaitTimeout, encode_form, send
from simulator.contract import attachment_pairs
from simulator.scenarios.expectations import check_expectations
from simulator.scenarios.integration import create, discard, reused, tidy
from simulator.scenarios.loader import Scenario, Step
from simulator.scenarios.recording import RecordingControl, refused
from simulator.scenarios.results import Exchange, ScenarioResult, StepError, StepResult
from simulator.scenarios.templating import Renderer, TemplateFailure

WEBCHAT_PATH = "/webchat/api"


@dataclass(frozen=True)
class Targets:
    """Where the steps go.

    `simulator_url` is this simulator (control API, journal, fake chat). `planfix_url` receives the
    chat-side steps (default: the simulator's /webchat/api). `integration_url`, when set, becomes
    the URL of each scenario's integration, so Planfix-side steps reach the integration under test.
    """

    simulator_url: str
    planfix_url: str | None = None
    integration_url: str | None = None
    integration_token: str | None = None
    planfix_token: str | None = None
    admin_token: str | None = None

    @property
    def webchat_url(self) -> str:
        """The `/webchat/api` that send steps post to."""
        return self.planfix_url or self.simulator_url.rstrip("/") + WEBCHAT_PATH

    @property
    def planfix_is_simulator(self) -> bool:
        """Whether send steps reach this simulator (so its journal shows their contract notes)."""
        own = self.simulator_url.rstrip("/") + "/"
        return self.planfix_url is None or self.planfix_url.startswith(own)


@dataclass
class _State:
    """What a running scenario knows: its integration, variables and journal position."""

    scenario: Scenario
    integration: dict[str, Any]
    variables: dict[str, Any]
    mark: int
    exchanges: list[Exchange] = field(default_factory=list)
    created: bool = True  # False: reused; never deleted or renamed
    touches_faults: bool = False


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _pairs_of(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [(str(k), _scalar(v)) for k, v in value.items() if v is not None]
    return [(str(k), _scalar(v)) for k, v in value]


def _parse(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:
        return None


def _answer_dict(answer: Answer) -> dict[str, Any]:
    return {
        "status": answer.status,
        "text": answer.text,
        "body": answer.json_or_none(),
        "headers": {k.lower(): v for k, v in answer.headers.items()},
        "error": answer.error,
    }


class Runner:
    """Runs scenarios against `targets`; `on_step` sees each step's result as it completes."""

    def __init__(
        self,
        targets: Targets,
        *,
        on_step: Callable[[Scenario, StepResult], None] | None = None,
        environ: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        keep: bool = False,
    ) -> None:
        self.targets = targets
        self.keep = keep
        self.on_step = on_step
        self.environ = dict(os.environ if environ is None else environ)
        self.timeout = timeout
        self.renderer = Renderer()
        self._handlers: dict[str, Callable[[_State, Step, Any], dict[str, Any]]] = {
            "send": self._send,
            "reply": self._reply,
            "first_message": self._first_message,
            "await": self._await,
            "http": self._http,
            "faults": self._faults,
        }

    # -- control API -----------------------------------------------------------------------

    def _control(self, state: _State | None) -> ControlClient:
        """The control client; with `state`, its calls show in the step's failure report."""
        return RecordingControl(
            self.targets.simulator_url.rstrip("/"),
            self.targets.admin_token,
            self.timeout + 30,
            None if state is None else state.exchanges,
        )

    def _last_journal_id(self, state: _State | None) -> int:
        entries = self._control(state).journal(limit=1)
        return int(entries[-1]["id"]) if entries else 0

    # -- scenario --------------------------------------------------------------------------

    def _setup(self, scenario: Scenario) -> _State:
        base: dict[str, Any] = {
            "env": self.environ,
            "run_id": secrets.token_hex(4),
            "scenario": scenario.name,
            "simulator_url": self.targets.simulator_url.rstrip("/"),
            "planfix_url": self.targets.webchat_url,
            "integration_url": self.targets.integration_url or "",
        }
        if self.targets.integration_token:
            # Undefined otherwise, so a scenario that needs it fails naming it.
            base["integration_token"] = self.targets.integration_token
        variables = dict(base)
        for name, raw in scenario.vars.items():
            # Each variable may use the ones before it; the integration does not exist yet, so
            # its tokens are not available to vars (steps can use them).
            variables[name] = self.renderer.value(raw, variables)
        settings = self.renderer.value(dict(scenario.integration), variables)
        faults = settings.pop("faults", None)
        reuse = settings.pop("reuse", False)
        touches_faults = bool(faults) or any(s.kind == "faults" for s in scenario.steps)
        control = self._control(None)
        if reuse:
            token = str(settings["planfix_token"])
            created = reused(control, token, self.targets.integration_url, touches_faults)
        else:
            slug = re.sub(r"[^a-z0-9]+", "-", scenario.name.lower()).strip("-")[:40]
            settings["name"] = f"scenario-{slug}-{secrets.token_hex(4)}"
            if self.targets.integration_url:
                settings["url"] = self.targets.integration_url
            created = create(control, settings)
        if faults:
            try:
                control.call("PUT", f"/api/v1/integrations/{created['id']}/faults", faults)
            except ControlError:
                if not reuse and not self.keep:
                    discard(control, created["id"])
                raise
        token = created["planfix_token"]
        if not self.targets.planfix_is_simulator:
            token = self.targets.planfix_token or self.environ.get("PLANFIX_SIM_PLANFIX_TOKEN", "")
        variables.update(
            integration=created,
            integration_id=created["id"],
            planfix_token=token,
            token=created["token"],
        )
        state = _State(scenario, created, variables, self._last_journal_id(None))
        state.created, state.touches_faults = not reuse, touches_faults
        return state

    def _teardown(self, state: _State) -> None:
        fixed_token = "planfix_token" in state.scenario.integration
        tidy(
            self._control(None),
            state.integration["id"],
            created=state.created,
            keep=self.keep,
            fixed_token=fixed_token,
            touched_faults=state.touches_faults,
        )

    def run(self, scenario: Scenario) -> ScenarioResult:
        """Run one scenario; never raises for what happens on the wire."""
        started = time.perf_counter()
        try:
            state = self._setup(scenario)
        except ControlError as exc:
            return ScenarioResult(scenario, (), _ms(started), f"setup: {refused(exc)}")
        except (StepError, TemplateFailure) as exc:
            return ScenarioResult(scenario, (), _ms(started), f"setup: {exc}")
        results: list[StepResult] = []
        try:
            for step in scenario.steps:
                result = self.run_step(state, step)
                results.append(result)
                if self.on_step is not None:
                    self.on_step(scenario, result)
                if not result.ok:
                    break
        finally:
            # The scenario's outcome is what matters; if this fails the token stays taken.
            with contextlib.suppress(ControlError):
                self._teardown(state)
        return ScenarioResult(scenario, tuple(results), _ms(started))

    def run_step(self, state: _State, step: Step) -> StepResult:
        """Run a step; with `retry`, again after `delay` while its expectations fail."""
        started = time.perf_counter()
        result = self._run_once(state, step)
        for _ in range(step.retry_times):
            if result.ok:
                break
            time.sleep(step.retry_delay)
            result = self._run_once(state, step)
        return replace(result, duration_ms=_ms(started))

    def _run_once(self, state: _State, step: Step) -> StepResult:
        started = time.perf_counter()
        state.exchanges = []
        title = step.title
        try:
            body = self.renderer.value(step.body, state.variables)
            title = step.title_for(body)
            expect = self.renderer.value(step.expect, state.variables)
            try:
                response = self._handlers[step.kind](state, step, body)
            except ControlError as exc:
                raise refused(exc) from exc
            mismatches, expected, actual = check_expectations(expect, response)
            if not mismatches:
                for name, template in step.save.items():
                    scope = {**state.variables, "response": response}
                    state.variables[name] = self.renderer.text(template, scope)
        except (StepError, TemplateFailure) as exc:
            exchanges = tuple(state.exchanges) or getattr(exc, "exchanges", ())
            return StepResult(
                step, False, _ms(started), error=str(exc), exchanges=exchanges, title=title
            )
        return StepResult(
            step,
            not mismatches,
            _ms(started),
            summary=_summary(response),
            mismatches=tuple(mismatches),
            exchanges=tuple(state.exchanges),
            expected=expected,
            actual=actual,
            title=title,
        )

    # -- steps -----------------------------------------------------------------------------

    def _send(self, state: _State, step: Step, body: dict[str, Any]) -> dict[str, Any]:
        fields = dict(body)
        pairs: list[tuple[str, str]] = []
        if "cmd" in fields:
            pairs.append(("cmd", _scalar(fields.pop("cmd"))))
        token = fields.pop("planfix_token", state.variables["planfix_token"])
        if token is not None:
            pairs.append(("planfix_token", _scalar(token)))
        content_type = fields.pop("content_type", "application/x-www-form-urlencoded")
        data = fields.pop("data", {}) or {}
        attachments = fields.pop("attachments", []) or []
        extra = fields.pop("form", []) or []
        for key, value in fields.items():
            for item in value if isinstance(value, list) else [value]:
                if item is not None:
                    pairs.append((key, _scalar(item)))
        pairs.extend((f"data_{k}", _scalar(v)) for k, v in data.items() if v is not None)
        pairs += attachment_pairs((_scalar(i["name"]), _scalar(i["url"])) for i in attachments)
        pairs.extend(_pairs_of(extra))
        watch = "notes" in step.expect and self.targets.planfix_is_simulator
        before = self._last_journal_id(state) if watch else 0
        url = self.targets.webchat_url
        payload = encode_form(pairs)
        answer = send(
            "POST",
            url,
            body=payload,
            headers={"Content-Type": content_type, "Accept": "application/json"},
            timeout=self.timeout,
        )
        state.exchanges.append(
            Exchange("POST", url, payload.decode(), answer.status, answer.text, answer.error)
        )
        response = _answer_dict(answer)
        response["form"] = dict(reversed(pairs))  # first value of each key wins
        response["pairs"] = [list(p) for p in pairs]
        if watch:
            # Revealed, as a masked token never equals the sent one; kept out of the failure
            # report (state=None), which must not show other integrations' tokens.
            journal = self._control(None).journal(direction="to_planfix", since=before, reveal=True)
            entries: list[Any] = list(journal)
            mine = [e for e in entries if e["form"] == response["pairs"]]
            if not mine:
                # Without its entry the step cannot know the notes: "none" must not pass.
                raise StepError("the journal has no entry for this request: notes unknown")
            response["notes"] = mine[0]["notes"]
            response["journal"] = mine[0]
        return response

    def _find_task(self, state: _State, chat_id: str, provider_id: str | None) -> int:
        tasks = self._control(state).tasks(state.integration["id"])
        found = [
            t
            for t in tasks
            if t["chat_id"] == chat_id and (provider_id is None or t["provider_id"] == provider_id)
        ]
        if not found:
            raise StepError(f"no task for chatId {chat_id!r} in this scenario's integration")
        active = [t for t in found if t["status"] == "active"] or found
        return int(max(active, key=lambda t: t["number"])["number"])

    def _delivery_response(
        self, state: _State, data: dict[str, Any], *, with_notes: bool
    ) -> dict[str, Any]:
        delivery = data.get("delivery") or {}
        answer = delivery.get("answer") or {}
        text = answer.get("body") or ""
        message = data.get("message") or {}
        notes: list[dict[str, Any]] = []
        if delivery.get("outcome"):
            notes.append({"code": "delivery", "text": delivery["outcome"]})
        # Reading the journal costs a request per attempt: only when the step checks notes.
        entry_ids = (delivery.get("journal_ids") or []) if with_notes else []
        for entry_id in entry_ids:
            entry = self._control(state).journal_entry(entry_id)
            notes.extend(entry.get("notes") or [])
        return {
            **{k: v for k, v in data.items() if k not in ("delivery", "message")},
            "status": answer.get("status"),
            "text": text,
            "body": _parse(text),
            "delivery": delivery,
            "message": message,
            "messageId": message.get("message_id") or delivery.get("message_id"),
            "task": data.get("task", delivery.get("task_number")),
            "notes": notes,
            "error": "" if answer else (delivery.get("outcome") or "no answer"),
        }

    def _reply(self, state: _State, step: Step, body: dict[str, Any]) -> dict[str, Any]:
        task = body.get("task")
        if task is None or task == "":
            task = self._find_task(state, str(body["chatId"]), body.get("providerId"))
        payload = {k: body[k] for k in ("message", "employee", "attachments", "wait") if k in body}
        payload.setdefault("wait", True)
        path = f"/api/v1/tasks/{quote(str(task))}/replies"
        data = self._control(state).call("POST", path, payload)
        response = self._delivery_response(state, data, with_notes="notes" in step.expect)
        response["task"] = int(task) if str(task).isdigit() else task
        return response

    def _first_message(self, state: _State, step: Step, body: dict[str, Any]) -> dict[str, Any]:
        payload = {"integration": state.integration["id"], **body}
        data = self._control(state).call("POST", "/api/v1/first-messages", payload)
        return self._delivery_response(state, data, with_notes="notes" in step.expect)

    def _await(self, state: _State, step: Step, body: dict[str, Any]) -> dict[str, Any]:
        timeout = float(body.get("timeout", 10))
        match: dict[str, Any] = {"integration": state.integration["id"]}
        for key in ("direction", "party", "cmd", "chatId", "status", "fields"):
            if key in body:
                match[key] = body[key]
        if isinstance(match.get("fields"), dict):
            # null: the key must be absent; a list: all of the key's values, in order.
            match["fields"] = {
                k: v
                if v is None
                else [_scalar(i) for i in v]
                if isinstance(v, list)
                else _scalar(v)
                for k, v in match["fields"].items()
            }
        if "status" in match:
            match["status"] = int(match["status"])
        control = self._control(state)
        try:
            found = control.wait(
                timeout=timeout,
                since=state.mark,
                integration=match["integration"],
                direction=match.get("direction"),
                party=match.get("party"),
                cmd=match.get("cmd"),
                chat_id=match.get("chatId"),
                status=match.get("status"),
                fields=match.get("fields"),
            )
        except WaitTimeout as exc:
            timed_out = exc.body if isinstance(exc.body, dict) else {}
            closest = timed_out.get("closest") or []
            differences = timed_out.get("differences") or [[] for _ in closest]
            seen = "".join(
                f"\n    #{e['id']} {e['direction']} {e['cmd'] or '-'} → {e['status']}: "
                + "; ".join(diff)
                for e, diff in zip(closest, differences, strict=False)
            )
            raise StepError(
                f"nothing matched {json.dumps(match)} within {timeout:g} s"
                + (f"; closest:{seen}" if seen else "; the journal has nothing close")
            ) from exc
        entry: dict[str, Any] = dict(found)
        state.mark = max(state.mark, int(entry["id"]))
        form: dict[str, str] = {}
        for key, value in entry["form"]:
            form.setdefault(key, value)
        return {
            "status": entry["status"],
            "text": entry["response_body"],
            "body": _parse(entry["response_body"]),
            "form": form,
            "pairs": entry["form"],
            "notes": entry["notes"],
            "entry": entry,
            "cmd": entry["cmd"],
            "chatId": entry["chat_id"],
            "error": entry["error"] if entry["status"] is None else "",
        }

    def _http(self, state: _State, step: Step, body: dict[str, Any]) -> dict[str, Any]:
        method = str(body.get("method", "GET")).upper()
        headers = {str(k): _scalar(v) for k, v in (body.get("headers") or {}).items()}
        payload = b""
        if "json" in body:
            payload = json.dumps(body["json"], ensure_ascii=False).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        elif "form" in body:
            payload = encode_form(_pairs_of(body["form"]))
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif "body" in body:
            payload = str(body["body"]).encode("utf-8")
        url = str(body["url"])
        timeout = float(body.get("timeout", self.timeout))
        answer = send(method, url, body=payload, headers=headers, timeout=timeout)
        state.exchanges.append(
            Exchange(
                method,
                url,
                payload.decode("utf-8", "replace"),
                answer.status,
                answer.text,
                answer.error,
            )
        )
        return _answer_dict(answer)

    def _faults(self, state: _State, step: Step, body: Any) -> dict[str, Any]:
        path = f"/api/v1/integrations/{state.integration['id']}/faults"
        if body == "off":
            data = self._control(state).call("DELETE", path)
        else:
            data = self._control(state).call("PUT", path, body)
        return {"status": 200, "body": data, "text": json.dumps(data)}


def _summary(response: dict[str, Any]) -> str:
    status = response.get("status")
    return str(status) if status is not None else (response.get("error") or "no answer")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
