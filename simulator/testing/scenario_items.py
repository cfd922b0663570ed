"""pytest collects scenario YAML files: one test item per scenario document, as Tavern does.

Enable it where scenarios live (`scenarios/conftest.py` imports these hooks) or with
`-p simulator.testing.scenario_items`. Each item checks its own document's schema when it runs, so a
bad file fails only its own items.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.errors import ConfigError
from simulator.scenarios.command import add_target_options
from simulator.scenarios.loader import SUFFIXES, Document, read_documents
from simulator.scenarios.report import failure_text, step_line
from simulator.scenarios.results import ScenarioResult
from simulator.scenarios.runner import Runner, Targets
from simulator.serving.live import LiveServer

_SERVER = pytest.StashKey[LiveServer]()


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--planfix-url`, `--integration-url`, … as `planfix-sim run` takes them."""
    group = parser.getgroup("planfix-scenarios", "planfix-simulator YAML scenarios")
    add_target_options(group.addoption)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> ScenarioFile | None:
    """Every *.yaml / *.yml file is a scenario file."""
    if file_path.suffix in SUFFIXES:
        found: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return found
    return None


class ScenarioFailed(Exception):
    """A scenario ran and did not pass."""

    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.scenario.name)
        self.result = result


class ScenarioFile(pytest.File):
    """A YAML file: one item per document (unreadable YAML: one item that fails)."""

    def collect(self) -> Iterator[ScenarioItem]:
        """Items named after the scenarios."""
        seen: set[str] = set()
        for document in read_documents(self.path):
            name = document.name
            if name in seen:
                name = f"{name} [{document.index + 1}]"
            seen.add(name)
            yield ScenarioItem.from_parent(self, name=name, document=document)


def _option(config: pytest.Config, name: str) -> str | None:
    # The hooks may be registered after option parsing (a conftest found late): no value then.
    value: Any = config.getoption(name, default=None)
    return str(value) if value else None


def _targets(config: pytest.Config) -> Targets:
    # The fixtures' plugin (`planfix` fixture) names the same things --planfix-sim-url and
    # --planfix-sim-admin-token: either spelling points scenarios at a running simulator.
    simulator_url = _option(config, "simulator_url") or _option(config, "planfix_sim_url")
    if simulator_url is None:
        server = config.stash.get(_SERVER, None)
        if server is None:
            server = LiveServer().start()
            config.stash[_SERVER] = server
            config.add_cleanup(server.stop)
        simulator_url = server.url
    return Targets(
        simulator_url=simulator_url.rstrip("/"),
        planfix_url=_option(config, "planfix_url"),
        integration_url=_option(config, "integration_url"),
        integration_token=_option(config, "integration_token"),
        planfix_token=_option(config, "planfix_token"),
        admin_token=_option(config, "simulator_admin_token")
        or _option(config, "planfix_sim_admin_token"),
    )


class ScenarioItem(pytest.Item):
    """One scenario document."""

    def __init__(self, *, document: Document, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.document = document
        self.lines: list[str] = []

    def runtest(self) -> None:
        """Check the document, run it against the session's simulator, fail on a mismatch."""
        scenario = self.document.check()
        runner = Runner(
            _targets(self.config), on_step=lambda _s, result: self.lines.append(step_line(result))
        )
        result = runner.run(scenario)
        server = self.config.stash.get(_SERVER, None)
        if server is not None:
            server.check()
        if not result.ok:
            raise ScenarioFailed(result)

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str:
        """A scenario failure shows steps and diff; an invalid file shows file:line and field."""
        if isinstance(excinfo.value, ScenarioFailed):
            return "\n".join([*self.lines, failure_text(excinfo.value.result)])
        if isinstance(excinfo.value, ConfigError):
            return f"invalid scenario: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        """Where the scenario starts."""
        return self.path, self.document.line - 1, f"scenario: {self.name}"
