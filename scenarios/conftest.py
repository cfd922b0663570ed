"""Every YAML file here is a scenario: collected by the simulator's scenario plugin."""

from simulator.testing.scenario_items import pytest_addoption, pytest_collect_file

__all__ = ["pytest_addoption", "pytest_collect_file"]
