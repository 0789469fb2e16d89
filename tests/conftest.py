"""Shared fixtures: a virtual clock, a bus on it, and a list that records events."""

from __future__ import annotations

import pytest

import hms_bus
from hms_bus import Bus, VirtualClock


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock("2021-08-29T12:00:00Z")


@pytest.fixture
def bus(clock: VirtualClock) -> Bus:
    with Bus(clock=clock, src="test") as b:
        yield b


@pytest.fixture
def received() -> list:
    return []


@pytest.fixture
def default_bus(clock: VirtualClock):
    """Swap in a fresh default bus for the module-level functions, then restore."""
    before = hms_bus.bus._default
    b = hms_bus.use(Bus(clock=clock, src="test"))
    try:
        yield b
    finally:
        hms_bus.bus._default = before


def pytest_addoption(parser):
    parser.addoption(
        "--browser",
        action="store_true",
        help="also collect tests/browser: JupyterLab and Voila in headless Chromium "
        "(make test-browser)",
    )


def pytest_ignore_collect(collection_path, config):
    """tests/browser needs Chromium and takes a minute: only with --browser."""
    if collection_path.name == "browser" and not config.getoption("--browser"):
        return True
    return None
