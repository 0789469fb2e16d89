"""The NATS backend never changes a stream it did not create, and fails fast for good reasons.

Each repro of issue 11 against a real nats-server: a second bus asking for
other settings, a stream of another application with the bus's name, a
work-queue stream; refusals the server gives for good, raised in seconds with
the server's own words.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time

import pytest

pytest.importorskip("nats")

import nats  # noqa: E402
from nats.js.api import RetentionPolicy, StreamConfig, StreamSource  # noqa: E402
from nats_fixtures import server  # noqa: E402, F401 (pytest fixtures)

from hms_bus import Bus, HmsBusError  # noqa: E402
from hms_bus.backends import nats_backend  # noqa: E402
from hms_bus.server import find_nats_server, free_port  # noqa: E402

_n = itertools.count()


@pytest.fixture
def names() -> tuple[str, str]:
    n = next(_n)
    return f"S{n}", f"s{n}"


def foreign(server, coro_fn):
    """Run ``coro_fn(js)`` with a plain nats-py client, as another application would."""

    async def main():
        nc = await nats.connect(server.url)
        try:
            return await coro_fn(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(main())


def config_of(server, stream: str) -> StreamConfig:
    async def get(js):
        return (await js.stream_info(stream)).config

    return foreign(server, get)


def test_a_bus_asking_other_settings_is_refused_and_the_stream_keeps_its_events(server, names):
    """Was: URL?retention=120&max_bytes=300 update_stream-ed the stream: 9 of 10 events gone."""
    stream, prefix = names
    url = f"{server.url}?stream={stream}&prefix={prefix}"
    with Bus(nats_backend(url)) as first:
        sent = [first.publish("pay.sent", {"n": n, "pad": "x" * 40}) for n in range(10)]
    before = config_of(server, stream)
    t0 = time.monotonic()
    with pytest.raises(HmsBusError) as refused:
        nats_backend(url + "&retention=120&max_bytes=300")
    assert time.monotonic() - t0 < 5
    message = str(refused.value)
    assert f"stream {stream!r} at {url}&retention=120&max_bytes=300 exists with other" in message
    assert "retention 86400 s (asked 120 s); max_bytes 1,073,741,824 bytes (asked 300 bytes)" in (
        message
    )
    assert "left unchanged" in message and "?update=1" in message and "?stream=" in message
    assert config_of(server, stream) == before
    with Bus(nats_backend(url)) as reader:
        assert reader.replay() == sent


def test_a_plain_url_uses_a_stream_with_other_settings_as_it_is(server, names):
    stream, prefix = names
    url = f"{server.url}?stream={stream}&prefix={prefix}"
    with Bus(nats_backend(url + "&retention=3600&max_retained=50")) as first:
        ev = first.publish("a.b")
    with Bus(nats_backend(url)) as second:  # asks for nothing, so compares nothing
        assert second.replay() == [ev]
    config = config_of(server, stream)
    assert (config.max_age, config.max_msgs) == (3600, 50)


def test_update_1_changes_the_stream_as_asked_and_keeps_its_events(server, names, caplog):
    stream, prefix = names
    url = f"{server.url}?stream={stream}&prefix={prefix}"
    with Bus(nats_backend(url)) as first:
        ev = first.publish("a.b")
    with Bus(nats_backend(url + "&retention=7200&update=1")) as second:
        assert second.replay() == [ev]
    assert config_of(server, stream).max_age == 7200
    assert "updated stream" in caplog.text and "retention 86400 s (asked 7200 s)" in caplog.text


@pytest.mark.parametrize("update", ["", "&update=1"])
def test_a_stream_of_another_application_is_refused_untouched(server, names, update):
    """Was: a stream named like the bus's, on subjects orders.>, got its subjects replaced."""
    stream, _ = names

    async def shop(js):
        await js.add_stream(name=stream, subjects=[f"orders{stream}.>"])

    foreign(server, shop)
    before = config_of(server, stream)
    t0 = time.monotonic()
    with pytest.raises(
        HmsBusError, match=rf"captures \['orders{stream}.>'\], not 'hms.>'.*untouched"
    ):
        nats_backend(f"{server.url}?stream={stream}{update}")
    assert time.monotonic() - t0 < 5
    assert config_of(server, stream) == before

    async def order(js):
        return await js.publish(f"orders{stream}.new", b'{"order": 1}')

    assert foreign(server, order).stream == stream  # the application still publishes


def test_a_work_queue_stream_is_refused_untouched(server, names):
    stream, prefix = names

    async def queue(js):
        await js.add_stream(
            name=stream, subjects=[f"{prefix}.>"], retention=RetentionPolicy.WORK_QUEUE
        )

    foreign(server, queue)
    with pytest.raises(HmsBusError, match="is a workqueue stream, which deletes messages"):
        nats_backend(f"{server.url}?stream={stream}&prefix={prefix}")
    assert config_of(server, stream).retention == "workqueue"


def test_a_memory_stream_of_the_bus_is_used_as_it_is(server, names):
    """Was: refused after 18.7 s ("is JetStream on?") because connecting tried to
    turn it into a file stream."""
    stream, prefix = names

    async def in_memory(js):
        await js.add_stream(name=stream, subjects=[f"{prefix}.>"], storage="memory")

    foreign(server, in_memory)
    with Bus(nats_backend(f"{server.url}?stream={stream}&prefix={prefix}")) as bus:
        ev = bus.publish("a.b")
        assert bus.replay() == [ev]
    assert config_of(server, stream).storage == "memory"


def test_a_read_only_bus_never_creates_a_stream(server, names):
    stream, prefix = names
    with pytest.raises(HmsBusError, match=f"there is no stream '{stream}' .* nothing to read"):
        nats_backend(f"{server.url}?stream={stream}&prefix={prefix}", readonly=True)

    async def exists(js):
        try:
            await js.stream_info(stream)
            return True
        except nats.js.errors.NotFoundError:
            return False

    assert foreign(server, exists) is False


def test_a_read_only_bus_ignores_settings_it_would_not_apply(server, names):
    stream, prefix = names
    url = f"{server.url}?stream={stream}&prefix={prefix}"
    with Bus(nats_backend(url)) as writer:
        ev = writer.publish("a.b")
    with Bus(nats_backend(url + "&retention=60&replicas=1", readonly=True)) as reader:
        assert reader.replay() == [ev]
    assert config_of(server, stream).max_age == 86400


def test_retention_shorter_than_the_default_duplicate_window_works(server, names):
    """Was: ?retention=60 was refused after 18.7 s with "is JetStream on?"."""
    stream, prefix = names
    with Bus(nats_backend(f"{server.url}?stream={stream}&prefix={prefix}&retention=60")) as bus:
        ev = bus.publish("a.b")
        assert bus.replay() == [ev]
    config = config_of(server, stream)
    assert (config.max_age, config.duplicate_window) == (60, 60)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        (
            "&retention=60&duplicate_window=120",
            r"duplicates window can not be larger then max age \(error 10052\)",
        ),
        (
            "&replicas=3",
            r"replicas > 1 not supported in non-clustered mode \(error 10074\); replicas=3 "
            r"needs a cluster of at least 3",
        ),
    ],
)
def test_settings_the_server_refuses_fail_fast_with_its_reason(server, names, query, words):
    stream, prefix = names
    t0 = time.monotonic()
    with pytest.raises(HmsBusError, match=rf"refused to create stream '{stream}'.*{words}"):
        nats_backend(f"{server.url}?stream={stream}&prefix={prefix}{query}")
    assert time.monotonic() - t0 < 5


def test_a_mirror_stream_is_refused_untouched_and_named_as_a_mirror(server, names):
    stream, prefix = names

    async def mirror(js):
        await js.add_stream(name=f"SRC_{stream}", subjects=[f"src{prefix}.>"])
        await js.add_stream(StreamConfig(name=stream, mirror=StreamSource(name=f"SRC_{stream}")))

    foreign(server, mirror)
    before = config_of(server, stream)
    with pytest.raises(HmsBusError, match=rf"is a mirror of 'SRC_{stream}'.*left untouched"):
        nats_backend(f"{server.url}?stream={stream}&prefix={prefix}")
    assert config_of(server, stream) == before


def test_subjects_another_stream_captures_fail_fast(server, names):
    stream, prefix = names

    async def other(js):
        await js.add_stream(name=f"OTHER_{stream}", subjects=[f"{prefix}.>"])

    foreign(server, other)
    t0 = time.monotonic()
    with pytest.raises(HmsBusError, match=r"subjects overlap .*\(error 10065\); another stream's"):
        nats_backend(f"{server.url}?stream={stream}&prefix={prefix}")
    assert time.monotonic() - t0 < 5


def test_a_server_without_jetstream_fails_fast():
    """Was: 18.7 s, then "is JetStream on?"."""
    port = free_port()
    proc = subprocess.Popen(
        [find_nats_server(), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                t0 = time.monotonic()
                nats_backend(f"nats://127.0.0.1:{port}")
            except HmsBusError as exc:
                if "cannot reach" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.05)  # still starting
                    continue
                assert "has no JetStream" in str(exc) and "nats-server -js" in str(exc)
                assert time.monotonic() - t0 < 5
                return
            raise AssertionError("connected to a server without JetStream")
    finally:
        proc.terminate()
        proc.wait(5)
