"""Redaction: secrets in URLs, webhooks, headers and free text are never shown."""

from __future__ import annotations

import logging
import socket

import pytest

import hms_bus
from hms_bus import Bus, VirtualClock
from hms_bus.backends.memory import MemoryBackend
from hms_bus.monitor import Monitor, Webhook, frequency
from hms_bus.redact import (
    MASK,
    SecretFilter,
    kit_logger,
    redact_config,
    redact_headers,
    redact_url,
    redact_webhook,
    register_config,
    register_secret,
    register_url,
    scrub,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://alice:s3cret@127.0.0.1:4222", "nats://alice:***@127.0.0.1:4222"),
        ("nats://t0ken@h:4222", "nats://***@h:4222"),
        ("tls://alice:s3cret@h:4222", "tls://alice:***@h:4222"),
        (
            "nats://alice:pw1@a:4222, nats://alice:pw1@b:4222?replicas=3",
            "nats://alice:***@a:4222,nats://alice:***@b:4222?replicas=3",
        ),
        ("nats://h:4222?token=abc&stream=S", "nats://h:4222?token=***&stream=S"),
        (
            "nats://h:4222?nkey_seed=SUAB&creds=/x.creds",
            "nats://h:4222?nkey_seed=***&creds=/x.creds",
        ),
        (
            "kafka://b1:9093?sasl.password=p&ssl.key.password=k&sasl.username=me@corp.com",
            "kafka://b1:9093?sasl.password=***&ssl.key.password=***&sasl.username=me@corp.com",
        ),
        # what a URL should have percent-encoded: still masked whole
        ("nats://alice:p@ss@h:4222", "nats://alice:***@h:4222"),
        ("nats://alice:p/ss@h:4222", "nats://alice:***@h:4222"),
        ("nats://alice:pa?ss@h", "nats://alice:***@h"),
        ("nats://alice:p@ss/w?rd@h:4222", "nats://alice:***@h:4222"),
        ("nats://alice:pa?x=1@h", "nats://alice:***@h"),
        ("nats://alice:s%40cret@h", "nats://alice:***@h"),
        (
            "kafka://b:9093?sasl.password=Endpoint=sb://ns.example.net/;SharedAccessKey=abc",
            "kafka://b:9093?sasl.password=***",
        ),
        # nothing secret: shown as given
        ("nats://127.0.0.1:4222?stream=S&prefix=p", "nats://127.0.0.1:4222?stream=S&prefix=p"),
        ("tls://[::1]:4222", "tls://[::1]:4222"),
        ("memory://", "memory://"),
        ("nats://h:42x2", "nats://h:42x2"),
    ],
)
def test_redact_url_masks_passwords_tokens_and_secret_options(url, shown):
    assert redact_url(url) == shown


def test_register_url_lets_scrub_find_the_password_raw_and_decoded():
    assert register_url("nats://alice:R4w%2Fpass@h") == "nats://alice:***@h"
    assert scrub("pw R4w%2Fpass or R4w/pass") == f"pw {MASK} or {MASK}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://hooks.slack.com/services/T0123/B0456/abcdefSECRET",
            "https://hooks.slack.com/services/...",
        ),
        ("http://127.0.0.1:9000/hook", "http://127.0.0.1:9000/hook"),
        ("http://127.0.0.1:9000/hook?token=x", "http://127.0.0.1:9000/hook/..."),
        ("https://user:pw@example.com/alerts", "https://example.com/alerts/..."),
        ("https://example.com", "https://example.com"),
        ("http://[::1]:8080/a/b", "http://[::1]:8080/a/..."),
    ],
)
def test_webhook_is_shown_by_scheme_host_and_first_path_segment(url, shown):
    assert redact_webhook(url) == shown


def test_webhook_names_itself_without_its_secret_unless_given_a_name():
    hook = Webhook("https://hooks.example.com/services/T1/B2/zzSECRETzz")
    assert hook.name == "webhook:https://hooks.example.com/services/..."
    assert "zzSECRETzz" not in repr(hook)
    assert Webhook("https://hooks.example.com/x/y", name="payments-oncall").name == (
        "payments-oncall"
    )
    # its secret parts are masked in free text from now on; the URL shows redacted
    assert scrub("POST https://hooks.example.com/services/T1/B2/zzSECRETzz failed") == (
        "POST https://hooks.example.com/services/... failed"
    )
    assert scrub("token zzSECRETzz") == f"token {MASK}"


def test_headers_show_only_harmless_values():
    shown = redact_headers({"Authorization": "Bearer xyz", "Content-Type": "application/json"})
    assert shown == {"Authorization": MASK, "Content-Type": "application/json"}
    Webhook("http://127.0.0.1:1/h", headers={"X-Api-Key": "k3y-hdr-value"})
    assert scrub("sent k3y-hdr-value") == f"sent {MASK}"


def test_kafka_style_settings_are_redacted_by_name():
    config = {
        "bootstrap.servers": "b1:9093",
        "security.protocol": "SASL_SSL",
        "sasl.username": "svc",
        "sasl.password": "kafka-pw-123",
        "ssl.key.password": "key-pw-456",
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.key.location": "/etc/client.key",
        "ssl.key.pem": "-----BEGIN PRIVATE KEY-----abc",
        "ssl_key": "inline-key-789",
        "sasl.oauthbearer.client.secret": "oauth-secret-1",
    }
    shown = register_config(config)
    hidden = (
        "sasl.password",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl_key",
        "sasl.oauthbearer.client.secret",
    )
    assert shown == {**config, **dict.fromkeys(hidden, MASK)}
    assert redact_config(config) == shown
    assert scrub("login kafka-pw-123 / key-pw-456 failed") == f"login {MASK} / {MASK} failed"


def test_scrub_masks_urls_and_secret_options_it_was_not_told_about():
    text = "failed: nats://bob:hunter22@x:1 and tls://tok3n@y; password=hunter23 ok"
    assert scrub(text) == f"failed: nats://bob:{MASK}@x:1 and tls://{MASK}@y; password={MASK} ok"


def test_short_secrets_are_masked_in_urls_but_not_hunted_in_text():
    assert register_url("nats://al:pw@h") == f"nats://al:{MASK}@h"
    assert scrub("a pwd is not a pw") == "a pwd is not a pw"


def test_secret_filter_scrubs_message_arguments_and_traceback(caplog):
    register_secret("filter-secret-1")
    logger = logging.getLogger("test_redact_filter")
    logger.addFilter(SecretFilter())
    try:
        with caplog.at_level(logging.DEBUG, logger="test_redact_filter"):
            try:
                raise RuntimeError("boom with filter-secret-1")
            except RuntimeError:
                logger.exception("at %s: %s", "nats://u:filter-secret-1@h", "x")
    finally:
        logger.filters.clear()
    assert "filter-secret-1" not in caplog.text
    assert f"at nats://u:{MASK}@h: x" in caplog.text and "RuntimeError: boom with" in caplog.text


def test_kit_logger_carries_the_filter_once():
    logger = kit_logger("hms_bus")
    kit_logger("hms_bus")
    assert sum(isinstance(f, SecretFilter) for f in logger.filters) == 1


# -- where the kit shows things ---------------------------------------------------------


class _UrlBackend(MemoryBackend):
    """The memory backend, reporting a URL with a password (as a remote backend would)."""

    url = "nats://alice:bk-secret-9@h:4222"

    def status(self) -> dict:
        return {**super().status(), "last_error": f"lost {self.url}"}


def test_bus_repr_and_status_show_no_password():
    with Bus(_UrlBackend(), clock=VirtualClock()) as bus:
        assert "bk-secret-9" not in repr(bus)
        assert "nats://alice:***@h:4222" in repr(bus)
        status = bus.status()
        assert status["url"] == "nats://alice:***@h:4222"
        assert "bk-secret-9" not in str(status)


def test_failing_subscriber_report_is_scrubbed(bus, caplog):
    register_secret("sub-secret-77")

    def leaky(ev):
        raise ConnectionError("could not log in with sub-secret-77")

    bus.subscribe("orders.*", leaky)
    with bus.collect("bus.subscriber_error") as errors:
        bus.publish("orders.new", {})
    assert errors and "sub-secret-77" not in str(errors[0].data)
    assert f"could not log in with {MASK}" in errors[0].data["error"]
    assert "sub-secret-77" not in caplog.text and "could not log in" in caplog.text


def test_unknown_bus_url_error_hides_the_password():
    with pytest.raises(ValueError, match=r"unknown bus URL 'kafkaa://u:\*\*\*@h:9092'") as info:
        hms_bus.use("kafkaa://u:typo-pass-1@h:9092")
    assert "typo-pass-1" not in str(info.value)


def test_failed_webhook_shows_no_secret_in_log_events_or_deliveries(caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once the block ends
    url = f"http://127.0.0.1:{port}/services/T9/B9/hook-secret-55"
    clock = VirtualClock("2021-08-29T12:00:00Z")
    with Bus(clock=clock) as bus, bus.collect("monitor.delivery_failed") as failed:
        hook = Webhook(url, headers={"Authorization": "Bearer hdr-secret-66"}, retries=0)
        with Monitor(bus, [frequency("storm", "x.error", count=1, window=60)]) as mon:
            mon.router.route(hook)
            bus.publish("x.error", {})
            clock.advance(1)
            mon.flush(10)
            deliveries = mon.router.deliveries().to_string()
        bus.flush()
    shown = "\n".join([caplog.text, deliveries, repr(failed), repr(mon.router.log)])
    assert "hook-secret-55" not in shown and "hdr-secret-66" not in shown
    assert "webhook:http://127.0.0.1" in deliveries and failed
    assert failed[0].data["receiver"] == f"webhook:http://127.0.0.1:{port}/services/..."


def test_the_backends_settings_objects_hide_their_secrets_in_repr():
    """bus.backend.config (Kafka) and bus.backend.options (NATS) are public: their
    reprs used to print the URL's password and the librdkafka secrets as given."""
    pytest.importorskip("confluent_kafka")
    pytest.importorskip("nats")
    from hms_bus.backends.kafka.config import parse
    from hms_bus.backends.nats.connection import NatsOptions

    kafka = parse("kafka://h:9092?sasl.password=urlKpw88", conf={"ssl.key.password": "sslKeyPw66"})
    nats = NatsOptions(url="nats://alice:s3cretPW@h:4222", servers=["nats://alice:s3cretPW@h:4222"])
    token = NatsOptions(url="nats://h:4222?token=tok3nX", servers=["nats://h:4222"])
    for obj, secrets in (
        (kafka, ["urlKpw88", "sslKeyPw66"]),
        (nats, ["s3cretPW"]),
        (token, ["tok3nX"]),
    ):
        text = repr(obj)
        assert not [s for s in secrets if s in text], text
        assert "***" in text
    assert "servers=('h:9092',)" in repr(kafka)
