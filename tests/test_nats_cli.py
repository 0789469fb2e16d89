"""The operator's command line, ``python -m hms_bus``, against a real nats-server.

Mistakes get one line on stderr and no traceback; replay and tail only read.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nats")

import nats  # noqa: E402
from nats_fixtures import server, url  # noqa: E402, F401 (pytest fixtures)

from hms_bus import Bus  # noqa: E402
from hms_bus.backends import nats_backend  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "hms_bus"]
_n = itertools.count()


def run(*args: str, url: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HMS_BUS_URL", None)
    if url is not None:
        env["HMS_BUS_URL"] = url
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env)


def one_line_error(out: subprocess.CompletedProcess, code: int, words: str) -> None:
    assert out.returncode == code, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("error: "), out.stderr
    assert words in out.stderr and "Traceback" not in out.stderr


def test_publish_tail_replay(url):
    out = run("publish", "payments.sent", '{"amount": 1000}', url=url)
    assert out.returncode == 0, out.stderr
    assert '"topic": "payments.sent"' in out.stdout
    env = {**os.environ, "HMS_BUS_URL": url, "PYTHONPATH": str(ROOT)}
    tail = subprocess.Popen(
        [*CLI, "tail", "payments.*", "--since", "1h", "--count", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        run("publish", "payments.failed", '{"user": "x"}', url=url)
        lines = tail.communicate(timeout=30)[0].splitlines()
    finally:
        tail.kill()
    assert len(lines) == 2
    assert '"payments.sent"' in lines[0] and '"payments.failed"' in lines[1]
    out = run("replay", "payments.*", "--since", "10m", "--limit", "1", url=url)
    assert out.stdout.count("\n") == 1 and '"payments.failed"' in out.stdout


def test_tail_count_prints_exactly_that_many(url):
    """Was: tail --count 2 printed every kept event."""
    with Bus(nats_backend(url)) as bus:
        for n in range(6):
            bus.publish("t.x", n)
    out = run("tail", "t.*", "--since", "1h", "--count", "2", url=url)
    assert out.returncode == 0, out.stderr
    assert [line.count('"topic"') for line in out.stdout.splitlines()] == [1, 1]


def test_url_works_after_the_command_too(url):
    with Bus(nats_backend(url)) as bus:
        bus.publish("u.x")
    before = run("--url", url, "replay", "u.*")
    after = run("replay", "u.*", "--url", url)
    assert before.returncode == after.returncode == 0, after.stderr
    assert before.stdout == after.stdout and before.stdout.count("\n") == 1


def test_replay_limit_keeps_the_last_n_and_refuses_negatives(url):
    """Was: --limit -1 dropped the first event."""
    with Bus(nats_backend(url)) as bus:
        for n in range(3):
            bus.publish("l.x", n)
    out = run("replay", "l.*", "--limit", "2", url=url)
    assert ['"data": 1' in out.stdout, '"data": 2' in out.stdout, '"data": 0' in out.stdout] == [
        True,
        True,
        False,
    ]
    one_line_error(run("replay", "--limit", "-1", url=url), 2, "--limit: -1 is negative")


def test_server_port_out_of_range_is_one_line():
    """Was: server --port 99999 printed a traceback."""
    one_line_error(run("server", "--port", "99999"), 2, "99999 is not a TCP port (0 to 65535")


def test_tail_since_a_future_time_is_one_line(url):
    with Bus(nats_backend(url)) as bus:
        bus.publish("f.x")
    one_line_error(
        run("tail", "f.*", "--since", "2999-01-01T00:00:00Z", url=url), 1, "is in the future"
    )


def test_bad_json_and_unreachable_servers_are_one_line():
    out = run("publish", "a.b", "{bad", url="nats://127.0.0.1:1")
    assert out.returncode == 2 and "JSON '{bad' is not valid" in out.stderr
    one_line_error(run("replay", url="nats://127.0.0.1:1"), 1, "cannot reach a NATS server")


def test_replay_and_tail_never_create_or_change_a_stream(server, url):
    stream = url.split("stream=")[1].split("&")[0]
    one_line_error(run("replay", url=url), 1, f"there is no stream {stream!r}")
    one_line_error(run("tail", ">", "--count", "1", url=url), 1, "nothing to read")
    # HMS_BUS_URL may be a publisher's, with readonly=0 or update=1: still nothing made
    one_line_error(run("replay", url=url + "&readonly=0"), 1, f"there is no stream {stream!r}")
    one_line_error(run("replay", url=url + "&update=1"), 1, f"there is no stream {stream!r}")

    async def streams():
        nc = await nats.connect(server.url)
        try:
            return [s.config.name for s in await nc.jsm().streams_info()]
        finally:
            await nc.close()

    assert stream not in asyncio.run(streams())
    with Bus(nats_backend(url)) as bus:
        bus.publish("r.x")
    out = run("replay", url=url + "&retention=60&max_bytes=300")
    assert out.returncode == 0 and out.stdout.count("\n") == 1, out.stderr
    with Bus(nats_backend(url)) as bus:
        config = bus.backend.stream_info().config
    assert (config.max_age, config.max_bytes) == (86400, 1 << 30)
