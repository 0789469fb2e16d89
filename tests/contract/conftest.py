"""The delivery contract, run against every backend through one fixture.

Every test in ``tests/contract/`` takes ``bus`` (or ``make_bus``) and runs
once per engine in :data:`ENGINES`. To put a new backend under the contract,
add one entry: a function that takes pytest's ``request`` and returns a
factory ``make(retention=None, max_retained=None) -> Backend``, each call
giving an empty, independent store (its own stream, topic prefix...). Name
the entry after the engine: node ids then read ``test_x[kafka]``, which is
how ``tests/conftest.py`` keeps a broker's tests on one worker.

Tests assert after ``bus.flush()``, which waits for delivery on every
engine; they never rely on a subscriber having run inside ``publish``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hms_bus import Bus, HmsBusError, MemoryBackend, VirtualClock
from hms_bus.backends import Backend

MakeBackend = Callable[..., Backend]


def memory_engine(request: pytest.FixtureRequest) -> MakeBackend:
    def make(retention: float | None = None, max_retained: int | None = None) -> Backend:
        return MemoryBackend(
            retention if retention is not None else 24 * 3600.0,
            max_retained if max_retained is not None else 1_000_000,
        )

    return make


def loopback_engine(request: pytest.FixtureRequest) -> MakeBackend:
    """A fed backend without a server (``loopback.py``): the dispatcher's worker
    mode on its own. Time-based retention is not modelled."""
    from loopback import LoopbackBackend

    def make(retention: float | None = None, max_retained: int | None = None) -> Backend:
        return LoopbackBackend(max_retained)

    return make


_streams = itertools.count()


def nats_engine(request: pytest.FixtureRequest) -> MakeBackend:
    pytest.importorskip("nats")
    from hms_bus.backends import nats_backend

    server = request.getfixturevalue("nats_server")

    def make(retention: float | None = None, max_retained: int | None = None) -> Backend:
        n = next(_streams)
        # max_bytes: JetStream reserves it on disk; hundreds of 1 GiB streams would not fit.
        options: dict[str, Any] = {"stream": f"C{n}", "prefix": f"c{n}", "max_bytes": 8 << 20}
        if retention is not None:
            options["retention"] = retention
        if max_retained is not None:
            options["max_retained"] = max_retained
        return nats_backend(server.url, **options)

    return make


ENGINES: dict[str, Callable[[pytest.FixtureRequest], MakeBackend]] = {
    "memory": memory_engine,
    "loopback": loopback_engine,
    "nats": nats_engine,
}
"""Every backend the contract runs against: name -> factory maker."""


MUTANT = os.environ.get("HMS_CONTRACT_MUTANT", "")
"""Set by ``test_contract_bites.py`` to break each backend on purpose:
``reverse-read`` (kept events come newest first) or ``swap-feed`` (every
second fed event overtakes the one before). Empty in a normal run."""


def _mutate(backend: Backend) -> Backend:
    if MUTANT == "reverse-read":
        read = backend.read
        backend.read = lambda *args, **kw: read(*args, **kw)[::-1]  # type: ignore[method-assign]
    elif MUTANT == "swap-feed" and not backend.local:
        listen = backend.listen

        def swapped(sink: Any) -> Any:
            held: list = []

            def swap(event: Any, position: Any, own: bool) -> None:
                if held:
                    sink(event, position, own)
                    sink(*held.pop())
                else:
                    held.append((event, position, own))

            return listen(swap)

        backend.listen = swapped  # type: ignore[method-assign]
    return backend


@pytest.fixture(scope="session")
def nats_server() -> Iterator[Any]:
    """One throw-away nats-server for the contract's NATS runs (they share one worker)."""
    from hms_bus.server import NatsServer, find_nats_server

    try:
        find_nats_server()
    except HmsBusError as exc:  # pragma: no cover - the dev extra installs it
        pytest.skip(str(exc))
    with NatsServer() as server:
        yield server


@pytest.fixture(params=list(ENGINES))
def engine(request: pytest.FixtureRequest) -> str:
    """The name of the engine under test."""
    return request.param


@pytest.fixture
def make_bus(request: pytest.FixtureRequest, engine: str) -> Iterator[Callable[..., Bus]]:
    """``make_bus(clock=..., src=..., retention=..., max_retained=...)``: a bus on
    a fresh store of the engine under test, closed after the test."""
    make_backend = ENGINES[engine](request)
    made: list[Bus] = []

    def make(
        *,
        clock: Any = None,
        src: str = "test",
        retention: float | None = None,
        max_retained: int | None = None,
        seed: int | None = None,
    ) -> Bus:
        backend = _mutate(make_backend(retention=retention, max_retained=max_retained))
        bus = Bus(backend, clock=clock, src=src, seed=seed)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        try:
            bus.close()
        except HmsBusError:
            pass  # a test that broke its bus on purpose


@pytest.fixture
def bus(make_bus: Callable[..., Bus], clock: VirtualClock) -> Bus:
    """A bus on the engine under test, on the shared virtual clock."""
    return make_bus(clock=clock)
