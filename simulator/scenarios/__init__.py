"""YAML scenarios: replay message exchanges against the simulator or a real integration."""

from simulator.scenarios.loader import Scenario, Step, load_file
from simulator.scenarios.results import ScenarioResult
from simulator.scenarios.runner import Runner, Targets
from simulator.scenarios.schema import scenario_schema

__all__ = [
    "Runner",
    "Scenario",
    "ScenarioResult",
    "Step",
    "Targets",
    "load_file",
    "scenario_schema",
]
