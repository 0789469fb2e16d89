"""Shared fixtures: a virtual clock, a bus on it, and a list that records events.

Also two session-wide rules:

* With pytest-xdist (``make test`` runs a worker per core plus one), each notebook stays on
  one worker in cell order, and tests that start brokers (NATS, Kafka) run
  one after another on one worker per broker kind (see ``_xdist_scope``).
* Every throw-away directory the kit makes (nats-server stores) goes under a
  private folder named by ``HMS_BUS_TMPDIR``; the session fails if anything is
  left in it at the end, then removes it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

import hms_bus
from hms_bus import Bus, VirtualClock

pytest_plugins = ["pytester", "ipc_kernels"]


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


# -- session-wide rules -------------------------------------------------------

_BROKERS = ("nats", "kafka")


def _xdist_scope(nodeid: str) -> str:
    """What must run on one worker, in order, with ``nodeid``.

    A notebook's cells share one kernel, so a notebook is one unit; tests that
    start brokers share one unit per broker kind; any other test stands alone.
    """
    path = nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        return path
    lowered = nodeid.lower()
    return next((f"broker:{b}" for b in _BROKERS if b in lowered), nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    # xdist's own --dist loadgroup marks groups by rewriting node ids, which
    # pytest 9 no longer honours; a scheduler that groups by node id does not
    # depend on that.
    from xdist.scheduler import LoadScopeScheduling

    class KitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _xdist_scope(nodeid)

    return KitScheduling(config, log)


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if _is_controller(config) and "HMS_BUS_TMPDIR" not in os.environ:
        # Workers, subprocesses and notebook kernels inherit the variable.
        path = tempfile.mkdtemp(prefix="hms-test-session-")
        os.environ["HMS_BUS_TMPDIR"] = path
        config.stash[_TMP_KEY] = Path(path)


_TMP_KEY = pytest.StashKey[Path]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    path = config.stash.get(_TMP_KEY, None)
    if path is None or not _is_controller(config):
        return
    left = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    shutil.rmtree(path, ignore_errors=True)
    os.environ.pop("HMS_BUS_TMPDIR", None)
    if left:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        message = f"the tests left kit-made temporary folders behind: {', '.join(left)}"
        if reporter is not None:
            reporter.write_line(f"ERROR: {message}", red=True, bold=True)
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


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


# -- Kafka: librdkafka's mock cluster ------------------------------------------------

_kafka_prefixes = iter(range(1, 1_000_000))


@pytest.fixture(scope="session")
def kafka_cluster():
    """One mock Kafka cluster (3 brokers) for the tests that never fault it."""
    pytest.importorskip("confluent_kafka")
    from hms_bus.backends.kafka.mock import MockKafkaCluster

    with MockKafkaCluster(3) as cluster:
        yield cluster


@pytest.fixture
def kafka_url(kafka_cluster) -> str:
    """A URL with a topic prefix of this test's own, and quick live delivery."""
    return f"{kafka_cluster.url}?prefix=t{next(_kafka_prefixes)}&fetch_wait_ms=10&refresh=0.2"
