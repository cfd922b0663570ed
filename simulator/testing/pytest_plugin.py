"""pytest plugin: a live Planfix simulator for your integration's tests.

Installed with the package (entry point `pytest11`), so the fixtures are there without imports:

- `planfix_server` (session): a simulator in a thread on a free loopback port, started once per
  session (per xdist worker), or the one at `--planfix-sim-url`;
- `planfix` (function): a fresh integration of its own (own Planfix token, tasks, contacts and
  journal), so tests stay independent and can run in parallel;
- `planfix_integration_settings` (function): override it to configure that integration (the
  webhook `url` of your integration, its `token`, `profile`, `strict`, …);
- `fuzz_webhook` (function): `fuzz_webhook(url, token, examples=50)` fuzzes your webhook with the
  checks of `planfix-sim fuzz`; a broken check fails the test with each minimal curl command.

Errors raised inside a local simulator's request threads fail the test that caused them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from simulator.clients.control import (
    ContactJson,
    ControlClient,
    ControlError,
    DeliveryJson,
    FirstMessageJson,
    InboxMessageJson,
    IntegrationJson,
    JournalEntryJson,
    ReplyJson,
    TaskDetailJson,
    TaskJson,
    WaitTimeout,
)
from simulator.clients.planfix import AttachmentLike, PlanfixClient, wire_name
from simulator.matching import Match, closest, differences
from simulator.serving.live import LiveServer

URL_OPTION = "--planfix-sim-url"
TOKEN_OPTION = "--planfix-sim-admin-token"  # noqa: S105 - an option name
NEAR_MISSES = 3


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--planfix-sim-url` and `--planfix-sim-admin-token`."""
    group = parser.getgroup("planfix-simulator")
    group.addoption(
        URL_OPTION,
        default=os.environ.get("PLANFIX_SIM_URL") or None,
        help="use the simulator at this base URL instead of starting one (env PLANFIX_SIM_URL)",
    )
    group.addoption(
        TOKEN_OPTION,
        default=os.environ.get("PLANFIX_SIM_ADMIN_TOKEN") or None,
        help="admin token of that simulator's control API (env PLANFIX_SIM_ADMIN_TOKEN)",
    )


class SimulatorServer:
    """A running simulator: its base URL, control API, and (when local) its server thread."""

    def __init__(self, url: str, admin_token: str | None, live: LiveServer | None) -> None:
        self.url = url.rstrip("/")
        self.live = live
        self.control = ControlClient(self.url, admin_token)

    @property
    def planfix_url(self) -> str:
        """The Planfix endpoint (`/webchat/api`)."""
        return self.url + "/webchat/api"

    def check(self) -> None:
        """Re-raise an exception raised inside the local server's request threads."""
        if self.live is not None:
            self.live.check()


@pytest.fixture(scope="session")
def planfix_server(pytestconfig: pytest.Config) -> Iterator[SimulatorServer]:
    """The simulator of this session: started in a thread, or the one at --planfix-sim-url."""
    url = pytestconfig.getoption(URL_OPTION)
    admin_token = pytestconfig.getoption(TOKEN_OPTION)
    if url:
        yield SimulatorServer(url, admin_token, None)
        return
    # testing=True lets unexpected exceptions reach LiveServer.check() instead of becoming
    # a quiet 500, so a simulator bug fails the test that hit it.
    live = LiveServer({"testing": True}).start()
    try:
        yield SimulatorServer(live.url, None, live)
    finally:
        live.stop()


@pytest.fixture
def fuzz_webhook(tmp_path: Path) -> Callable[..., Any]:
    """`fuzz_webhook(url, token, **options)`: fuzz a webhook; failing checks fail the test."""
    from simulator.testing.fuzz import FuzzFailed, run_fuzz_webhook

    def fuzz(url: str, token: str, **options: Any) -> Any:
        options.setdefault("out_dir", str(tmp_path))
        try:
            return run_fuzz_webhook(url, token, **options)
        except FuzzFailed as exc:
            pytest.fail(str(exc), pytrace=False)

    return fuzz


@pytest.fixture
def planfix_integration_settings() -> dict[str, Any]:
    """Settings of each test's integration (url, token, profile, strict, …): override to set."""
    return {}


@pytest.fixture
def planfix(
    planfix_server: SimulatorServer,
    planfix_integration_settings: dict[str, Any],
    request: pytest.FixtureRequest,
) -> Iterator[PlanfixSandbox]:
    """A fresh integration of this test's own on the session's simulator."""
    planfix_server.check()
    # Named after the test, so a shared simulator's sandbox UI shows whose records are whose.
    settings = {
        "name": f"{request.node.name[:60]}-{secrets.token_hex(4)}",
        **planfix_integration_settings,
    }
    integration = planfix_server.control.create_integration(**settings)
    sandbox = PlanfixSandbox(planfix_server, integration, request.node.nodeid)
    yield sandbox
    planfix_server.check()
    # The test's integration goes with its records (its journal stays as history), so a shared
    # simulator does not pile them up. A remote simulator may refuse: the records are isolated.
    with contextlib.suppress(ControlError):
        planfix_server.control.delete_integration(integration["id"])


class PlanfixSandbox:
    """One test's integration on the simulator: what the `planfix` fixture hands out."""

    def __init__(self, server: SimulatorServer, integration: IntegrationJson, test: str) -> None:
        self.server = server
        self.control = server.control
        self.integration = integration
        self.test = test

    # -- where and how your integration talks to Planfix --------------------------------------

    @property
    def url(self) -> str:
        """The Planfix endpoint your integration posts to."""
        return self.server.planfix_url

    @property
    def token(self) -> str:
        """The Planfix token your integration sends as `planfix_token`."""
        return self.integration["planfix_token"]

    @property
    def chat_token(self) -> str:
        """The integration's own token, which Planfix sends as `token` to its webhook."""
        return self.integration["token"]

    @property
    def id(self) -> int:
        """The integration's id in the simulator."""
        return self.integration["id"]

    def client(self, provider_id: str = "pytest") -> PlanfixClient:
        """A Planfix API client with this integration's token (to act as the chat side)."""
        return PlanfixClient(self.url, self.token, provider_id=provider_id)

    def configure(self, **settings: Any) -> IntegrationJson:
        """Change the integration's settings, e.g. `configure(url=webhook, token=secret)`."""
        self.integration = self.control.update_integration(self.id, **settings)
        return self.integration

    # -- what Planfix does ------------------------------------------------------------------

    def reply(
        self,
        message: str,
        *,
        task: int | None = None,
        employee: str | None = None,
        attachments: Iterable[AttachmentLike] = (),
        wait: bool = True,
    ) -> ReplyJson:
        """An operator reply, delivered to the integration's webhook (default: latest task)."""
        if task is None:
            tasks = self.tasks()
            if not tasks:
                raise AssertionError("reply(): this integration has no task yet; pass task=")
            task = tasks[0]["number"]
        return self.control.reply(
            task, message, employee=employee, attachments=attachments, wait=wait
        )

    def first_message(
        self,
        contact_phone: str,
        message: str,
        *,
        employee: str | None = None,
        channel: str | None = None,
        attachments: Iterable[AttachmentLike] = (),
    ) -> FirstMessageJson:
        """A first message to a contact by phone; the integration must assign the chat."""
        return self.control.first_message(
            self.id,
            contact_phone,
            message,
            employee=employee,
            channel=channel,
            attachments=attachments,
        )

    # -- what Planfix holds -----------------------------------------------------------------

    def tasks(self) -> list[TaskJson]:
        """This integration's tasks, most recently active first."""
        return self.control.tasks(self.id)

    def task(self, number: int) -> TaskDetailJson:
        """One task with its messages."""
        return self.control.task(number)

    def contacts(self) -> list[ContactJson]:
        """This integration's contacts."""
        return self.control.contacts(self.id)

    def deliveries(self) -> list[DeliveryJson]:
        """Planfix → integration deliveries and their outcomes."""
        return self.control.deliveries(self.id)

    def inbox(self, chat_id: str | None = None) -> list[InboxMessageJson]:
        """What the fake chat received (when the integration's URL is the fake chat)."""
        return self.control.chat_inbox(self.id, chat_id)

    def journal(
        self,
        *,
        cmd: str | None = None,
        direction: str | None = None,
        status: int | None = None,
        since: int | None = None,
    ) -> list[JournalEntryJson]:
        """This integration's exchanges, oldest first (the test's own tokens unmasked)."""
        return self.control.journal(
            self.id, cmd=cmd, direction=direction, status=status, since=since, reveal=True
        )

    # -- waiting and asserting --------------------------------------------------------------

    def _match(
        self,
        cmd: str | None,
        direction: str | None,
        status: int | None,
        fields: Mapping[str, str | list[str] | None],
    ) -> Match:
        return Match.from_wire(
            {
                k: v
                for k, v in (("cmd", cmd), ("direction", direction), ("status", status))
                if v is not None
            }
            | {"fields": {wire_name(k): v for k, v in fields.items()}},
            self.id,
        )

    def wait_for(
        self,
        cmd: str | None = None,
        *,
        timeout: float = 10.0,
        direction: str | None = None,
        status: int | None = None,
        since: int = 0,
        **fields: str | list[str] | None,
    ) -> JournalEntryJson:
        """Wait until an exchange of this integration matches; fail listing near misses.

        Fields are form values (`chatId="c1"` or `chat_id="c1"`; a list means every value in
        order; None means absent). `since` is a journal id: 0 counts everything of this test.
        """
        return self._wait(self._match(cmd, direction, status, fields), timeout, since)

    def _wait(self, match: Match, timeout: float, since: int) -> JournalEntryJson:
        wire = match.as_dict()
        try:
            entry = self.control.wait(
                timeout=timeout,
                since=since,
                integration=self.id,
                direction=wire.get("direction"),
                cmd=wire.get("cmd"),
                status=wire.get("status"),
                fields=wire.get("fields"),
                reveal=True,
            )
        except WaitTimeout:
            self.server.check()
            # Near misses from this integration's own journal: a shared simulator's other
            # tests are none of this test's business.
            seen = self.journal(direction=match.direction, since=since or None)
            raise AssertionError(
                _explain(f"nothing matched within {timeout:g} s", match, seen)
            ) from None
        self.server.check()
        return entry

    def assert_received(
        self,
        cmd: str | None = None,
        *,
        timeout: float = 0.0,
        status: int | None = None,
        **fields: str | list[str] | None,
    ) -> JournalEntryJson:
        """Assert Planfix received a matching request; else list the closest and how they differ.

        With `timeout` > 0 it waits that long for the request to arrive.
        """
        match = self._match(cmd, "to_planfix", status, fields)
        if timeout > 0:
            return self._wait(match, timeout, 0)
        self.server.check()
        entries = self.journal(direction="to_planfix")
        for entry in entries:
            if not differences(match, entry):
                return entry
        raise AssertionError(
            _explain("Planfix received no matching request", match, entries)
        ) from None


def _short(entry: Mapping[str, Any]) -> str:
    form = entry.get("form") or []
    shown = ", ".join(f"{k}={v[:40]!r}" for k, v in form if k not in ("planfix_token", "token"))
    return (
        f"#{entry.get('id')} {entry.get('direction')} {entry.get('cmd') or '?'} "
        f"→ {entry.get('status')}: {shown}"
    )


def _explain(head: str, match: Match, entries: list[JournalEntryJson]) -> str:
    """The failure message: what was expected, then the near misses and how each differs."""
    lines = [f"{head}: {match.as_dict()}"]
    if not entries:
        lines.append("  the journal of this test's integration has no entries at all")
        return "\n".join(lines)
    near = closest(match, entries, NEAR_MISSES)
    lines.append(f"  closest of {len(entries)} entries:")
    for entry in near:
        lines.append(f"  - {_short(entry)}")
        lines.extend(f"      {d}" for d in differences(match, entry))
    return "\n".join(lines)
