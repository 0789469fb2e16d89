"""The operator CLI and the chapter's demo on Kafka, and the mock cluster they run on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka")

from confluent_kafka import Producer  # noqa: E402

from hms_bus import HmsBusError  # noqa: E402
from hms_bus.backends import kafka_backend  # noqa: E402
from hms_bus.backends.kafka.mock import MockKafkaCluster  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "hms_bus"]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(scope="module")
def mock_process():
    """``python -m hms_bus kafka-mock`` in a process of its own; yields its URL."""
    proc = subprocess.Popen(
        [*CLI, "kafka-mock", "--brokers", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        first = proc.stdout.readline()
        assert "librdkafka mock Kafka cluster, 1 broker(s), on kafka://127.0.0.1:" in first
        export = proc.stdout.readline()
        url = export.split("HMS_BUS_URL=")[1].strip()
        yield proc, url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


def test_the_chapters_demo_prints_its_line_on_a_kafka_mock_cluster(mock_process):
    """quick_demo.py, unchanged, with HMS_BUS_URL pointing at a cluster in another process."""
    _, url = mock_process
    demo = ROOT / "simulations" / "quick_demo.py"
    out = subprocess.run(
        [sys.executable, str(demo)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(HMS_BUS_URL=url),
    )
    assert out.stdout == "🛰️  got event: payments.sent {'user': 'CIT-883', 'amount': 1000}\n"
    assert out.returncode == 0 and out.stderr == ""


def test_cli_publish_tail_replay_on_kafka(mock_process):
    _, url = mock_process
    url += "?prefix=cli"
    run = dict(capture_output=True, text=True, timeout=60, env=_env(HMS_BUS_URL=url))
    out = subprocess.run([*CLI, "publish", "payments.sent", '{"amount": 1000}'], **run)
    assert out.returncode == 0, out.stderr
    assert '"topic": "payments.sent"' in out.stdout
    tail = subprocess.Popen(
        [*CLI, "tail", "payments.*", "--since", "1h", "--count", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(HMS_BUS_URL=url),
    )
    try:
        subprocess.run([*CLI, "publish", "payments.failed", '{"user": "x"}'], **run)
        lines = tail.communicate(timeout=30)[0].splitlines()
    finally:
        tail.kill()
    assert ['"payments.sent"' in lines[0], '"payments.failed"' in lines[1]] == [True, True]
    out = subprocess.run([*CLI, "replay", "payments.*", "--since", "10m", "--limit", "1"], **run)
    assert out.stdout.count("\n") == 1 and '"payments.failed"' in out.stdout
    out = subprocess.run([*CLI, "replay", "orders.*", "--url", url.replace("cli", "cli2")], **run)
    assert out.returncode == 0 and out.stdout == ""
    topics = Producer({"bootstrap.servers": url.split("//")[1].split("?")[0]}).list_topics(
        timeout=5
    )
    assert not [t for t in topics.topics if t.startswith("cli2.")]  # replay created nothing
    out = subprocess.run([*CLI, "--url", "kafka://127.0.0.1:1", "replay"], **run)
    assert out.returncode == 1
    assert out.stderr.startswith("error: cannot connect to Kafka at kafka://127.0.0.1:1 within 3 s")


def test_kafka_mock_command_stops_on_sigterm_and_its_cluster_goes(mock_process):
    """Stopping the command ends the cluster: clients then fail fast (separate process)."""
    proc = subprocess.Popen(
        [*CLI, "kafka-mock", "--brokers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    proc.stdout.readline()
    url = proc.stdout.readline().split("HMS_BUS_URL=")[1].strip()
    assert len(url.split(",")) == 2
    kafka_backend(url).close()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and err == ""
    with pytest.raises(HmsBusError, match="cannot connect to Kafka"):
        kafka_backend(url)


# -- the mock cluster driver ---------------------------------------------------------


def test_mock_clusters_start_in_milliseconds_and_are_independent():
    t0 = time.monotonic()
    with MockKafkaCluster(3) as a, MockKafkaCluster(1) as b:
        assert time.monotonic() - t0 < 1
        assert a.url.startswith("kafka://127.0.0.1:") and len(a.bootstrap.split(",")) == 3
        producer = Producer({"bootstrap.servers": a.bootstrap})
        producer.produce("only.in.a", b"x")
        assert producer.flush(5) == 0
        assert (
            "only.in.a"
            not in Producer({"bootstrap.servers": b.bootstrap}).list_topics(timeout=5).topics
        )
    assert not a.running
    with pytest.raises(HmsBusError, match="is closed; start a new MockKafkaCluster"):
        a.broker_down()


def test_mock_cluster_refuses_a_bad_broker_count_and_bad_requests():
    with pytest.raises(ValueError, match="brokers must be an int from 1 to 16, such as 3, got 0"):
        MockKafkaCluster(0)
    with MockKafkaCluster(1) as cluster:
        cluster.create_topic("made.here", 2, 1)
        with pytest.raises(HmsBusError, match="create_topic\\('made.here'\\) failed: .*EXISTS"):
            cluster.create_topic("made.here", 2, 1)
