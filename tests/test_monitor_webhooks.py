"""Webhooks against a real local HTTP server: chat and Alertmanager bodies, retries,
the delivery log, and the deliveries that silences and inhibition hold back."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest

from hms_bus import VirtualClock
from hms_bus.monitor import Monitor, Router, Webhook, absence, frequency
from hms_bus.monitor.alertmanager import ZERO_TIME, alert_labels, fingerprint

T0 = VirtualClock("2021-08-29T12:00:00Z").now()
STORM = frequency("error_storm", "*.error", count=3, window=60, labels={"team": "payments"})


def storm(bus, clock, n=3):
    for _ in range(n):
        bus.publish("bank.error", {"code": 502})
    clock.advance(600)


class Hook:
    """A local HTTP server that records POSTs; it can fail or stall on purpose."""

    def __init__(self, fail_first=0, delay=0.0):
        self.bodies, self.attempts = [], 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.attempts += 1
                time.sleep(delay)
                if hook.attempts <= fail_first:
                    self.send_response(500)
                    self.end_headers()
                    return
                hook.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def at(clock, seconds):
    clock.set(T0 + seconds)


def sent(router):
    """(seconds after T0, rule, state, status, detail) for each delivery log entry."""
    df = router.deliveries()
    return [(r.at.timestamp() - T0, r.rule, r.state, r.status, r.detail) for r in df.itertuples()]


# -- the chat body --------------------------------------------------------------------------


def test_webhook_posts_chat_style_json(bus, clock):
    with Hook() as server:
        hook = Webhook(server.url)
        with Monitor(bus, [STORM], receivers=[hook]):
            storm(bus, clock)
            hook.flush(5)
        assert [b["alert"]["state"] for b in server.bodies] == ["firing", "resolved"]
        assert server.bodies[0]["text"].startswith("FIRING error_storm at 2021-08-29T12:00:00")
        assert server.bodies[0]["alert"]["at"] == "2021-08-29T12:00:00.000Z"
        assert hook.sent == 2 and hook.failed == 0


def test_a_retried_webhook_has_one_log_entry_per_notice_saying_how_it_went(bus, clock):
    with Hook(fail_first=2) as server:
        hook = Webhook(server.url, backoff=0.01)
        with Monitor(bus, [STORM], receivers=[hook]) as mon:
            storm(bus, clock, n=3)
            mon.flush(5)
            log = mon.router.deliveries()
        assert server.attempts == 4 and hook.retried == 2 and hook.sent == 2
    assert list(zip(log["state"], log["status"], log["attempts"], strict=True)) == [
        ("firing", "sent", 3),
        ("resolved", "sent", 1),
    ]


def test_webhook_that_never_answers_is_reported_not_lost(bus, clock):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nobody listens there
    hook = Webhook(f"http://127.0.0.1:{port}/", retries=2, backoff=0.01, timeout=0.5)
    with bus.collect("monitor.delivery_failed") as failures:
        with Monitor(bus, [STORM], receivers=[hook]) as mon:
            storm(bus, clock)
            mon.flush(10)
        bus.flush()
    assert hook.failed == 2 and hook.retried == 4
    assert [f["data"]["state"] for f in failures] == ["firing", "resolved"]
    assert "after 3 attempts" in failures[0]["data"]["error"]
    log = mon.router.log
    assert [(e["state"], e["status"], e["attempts"]) for e in log] == [
        ("firing", "failed", 3),
        ("resolved", "failed", 3),
    ]
    assert "after 3 attempts" in log[0]["detail"]


def test_a_webhook_entry_is_queued_until_the_post_is_done(bus, clock):
    with Hook(delay=0.3) as server:
        hook = Webhook(server.url)
        with Monitor(bus, [STORM], receivers=[hook]) as mon:
            for _ in range(3):
                bus.publish("bank.error")
            clock.advance(1)
            assert [e["status"] for e in mon.router.log] == ["queued"]
            mon.flush(5)
            assert [e["status"] for e in mon.router.log] == ["sent"]
        assert len(server.bodies) == 2  # and the ended notice at close


def test_slow_webhook_does_not_block_the_bus(bus, clock):
    with Hook(delay=0.5) as server:
        hook = Webhook(server.url)
        with Monitor(bus, [STORM], receivers=[hook]):
            t0 = time.perf_counter()
            storm(bus, clock)
            took = time.perf_counter() - t0
            hook.flush(10)
        assert took < 0.3 and len(server.bodies) == 2


def test_webhook_rejects_bad_settings():
    with pytest.raises(ValueError, match=r"url='ftp://x/\.\.\.' must start with http"):
        Webhook("ftp://x")
    with pytest.raises(ValueError, match="retries=-1"):
        Webhook("http://127.0.0.1:9/", retries=-1)
    with pytest.raises(ValueError, match="format='slack' is not a webhook body"):
        Webhook("http://127.0.0.1:9/", format="slack")


# -- Alertmanager's body ---------------------------------------------------------------------

STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
RFC3339 = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"
ALERTMANAGER_V4 = {
    "type": "object",
    "required": [
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    ],
    "properties": {
        "version": {"const": "4"},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "status": {"enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "groupLabels": STRING_MAP,
        "commonLabels": STRING_MAP,
        "commonAnnotations": STRING_MAP,
        "externalURL": {"type": "string"},
        "alerts": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": [
                    "status",
                    "labels",
                    "annotations",
                    "startsAt",
                    "endsAt",
                    "generatorURL",
                    "fingerprint",
                ],
                "properties": {
                    "status": {"enum": ["firing", "resolved"]},
                    "labels": {**STRING_MAP, "required": ["alertname"]},
                    "annotations": STRING_MAP,
                    "startsAt": {"type": "string", "pattern": RFC3339},
                    "endsAt": {"type": "string", "pattern": RFC3339},
                    "generatorURL": {"type": "string"},
                    "fingerprint": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
                },
            },
        },
    },
}
"""Alertmanager's webhook payload (version 4), as its documentation lists it."""


def test_alertmanager_body_passes_the_schema_and_reads_as_alertmanager_writes_it(bus, clock):
    with Hook() as server:
        hook = Webhook(server.url, format="alertmanager", name="payments-oncall")
        with Monitor(bus, [STORM], receivers=[hook]) as mon:
            for _ in range(3):
                bus.publish("bank.error", {"code": 502})
            at(clock, 30)
            mon.flush(5)
            at(clock, 600)
            mon.flush(5)
    firing, resolved = server.bodies
    for body in (firing, resolved):
        jsonschema.validate(body, ALERTMANAGER_V4)
        assert body["receiver"] == "payments-oncall"
        assert body["groupKey"] == '{}:{alertname="error_storm"}'
        assert body["groupLabels"] == {"alertname": "error_storm"}
        assert body["commonLabels"] == {"alertname": "error_storm", "team": "payments"}
    (a1,), (a2,) = firing["alerts"], resolved["alerts"]
    assert (firing["status"], a1["status"]) == ("firing", "firing")
    assert (resolved["status"], a2["status"]) == ("resolved", "resolved")
    assert a1["startsAt"] == a2["startsAt"] == "2021-08-29T12:00:00.000Z"
    assert a1["endsAt"] == ZERO_TIME == "0001-01-01T00:00:00Z"
    assert a2["endsAt"] == "2021-08-29T12:01:00.000Z"
    assert a1["fingerprint"] == a2["fingerprint"] == fingerprint(a1["labels"])
    assert a1["annotations"]["summary"] == "3 *.error events within 60 s (alert at 3)"
    assert a2["annotations"]["summary"].startswith("*.error calmed down: 0 within 60 s")
    assert a1["annotations"]["value"] == "3" and a1["annotations"]["bound"] == "3"


def test_fingerprints_are_prometheus_fingerprints():
    """Test vectors from prometheus/common's signature tests."""
    assert fingerprint({}) == f"{14695981039346656037:016x}"
    pair = {"name": "garland, briggs", "fear": "love is not enough"}
    assert fingerprint(pair) == f"{5799056148416392346:016x}"
    assert fingerprint({"first-label": "first-label-value"}) == f"{5146282821936882169:016x}"


def test_alertmanager_labels_of_a_grouped_alert_carry_its_group():
    notice = {"rule": "retry_storm", "group": "CIT-1", "labels": {"severity": "page"}}
    assert alert_labels(notice) == {
        "alertname": "retry_storm",
        "severity": "page",
        "group": "CIT-1",
    }


def test_a_closing_monitor_resolves_alertmanager_alerts_with_a_reason(bus, clock):
    with Hook() as server:
        hook = Webhook(server.url, format="alertmanager")
        with Monitor(bus, [STORM], receivers=[hook]):
            for _ in range(3):
                bus.publish("bank.error")
            at(clock, 10)
    firing, ended = server.bodies
    jsonschema.validate(ended, ALERTMANAGER_V4)
    (alert,) = ended["alerts"]
    assert alert["status"] == "resolved" and alert["endsAt"] == "2021-08-29T12:00:10.000Z"
    assert alert["annotations"]["reason"] == "monitor closed"
    assert alert["fingerprint"] == firing["alerts"][0]["fingerprint"]


# -- what silences and inhibition held back -----------------------------------------------------


def errors_every(bus, clock, start, stop, gap=5):
    for s in range(start, stop, gap):
        at(clock, s)
        bus.publish("bank.error", {"code": 503})


def test_an_incident_still_firing_when_its_silence_ends_is_delivered_then_once(bus, clock):
    """Alertmanager re-checks silences: what they muted and still fires is sent when they end."""
    router = Router()
    with Hook() as server:
        router.route(Webhook(server.url))
        router.silence(rule="error_storm", start=T0, end=T0 + 100, comment="maintenance")
        with Monitor(bus, [STORM], router=router) as mon:
            errors_every(bus, clock, 0, 300)  # firing at 10 s, silenced
            at(clock, 600)  # fewer than 3 errors from 345 s, when the one at 285 s leaves
            mon.flush(5)
        states = [(b["alert"]["state"], b["alert"]["at"][11:19]) for b in server.bodies]
        late = server.bodies[0]["alert"]
    assert states == [("firing", "12:01:40"), ("resolved", "12:05:45")]
    assert late["reason"] == "silence 1 ended" and late["since"] == "2021-08-29T12:00:10.000Z"
    assert sent(router) == [
        (10, "error_storm", "firing", "silenced", "silence 1: maintenance"),
        (100, "error_storm", "firing", "sent", "silence 1 ended"),
        (345, "error_storm", "resolved", "sent", ""),
    ]


def test_an_incident_that_resolves_the_instant_its_silence_ends_is_not_paged(bus, clock):
    router = Router()
    with Hook() as server:
        router.route(Webhook(server.url))
        router.silence(rule="error_storm", start=T0, end=T0 + 60, comment="maintenance")
        with Monitor(bus, [STORM], router=router) as mon:
            errors_every(bus, clock, 0, 15)  # 0, 5, 10: firing at 10 s, resolved at 60 s
            at(clock, 300)
            mon.flush(5)
        assert server.bodies == []
    assert [(e[0], e[2], e[3]) for e in sent(router)] == [
        (10, "firing", "silenced"),
        (60, "resolved", "not_sent"),
    ]


def test_an_inhibited_incident_is_delivered_when_its_inhibitor_resolves(bus, clock):
    bank = absence("bank_down", "bank.heartbeat", window=30)
    router = Router()
    with Hook() as server:
        router.route(Webhook(server.url, format="alertmanager"))
        router.inhibit(source={"rule": "bank_down"}, target={"rule": "error_storm"})
        with Monitor(bus, [bank, STORM], router=router) as mon:
            errors_every(bus, clock, 40, 120)  # bank_down fires at 30 s; the storm at 50 s
            at(clock, 120)
            bus.publish("bank.heartbeat")  # the bank answers again: bank_down resolves
            errors_every(bus, clock, 120, 200, gap=10)
            at(clock, 600)
            mon.flush(5)
        bodies = [
            (b["alerts"][0]["labels"]["alertname"], b["status"], b["alerts"][0]["annotations"])
            for b in server.bodies
        ]
    for body in server.bodies:
        jsonschema.validate(body, ALERTMANAGER_V4)
    assert [(name, status) for name, status, _ in bodies] == [
        ("bank_down", "firing"),
        ("bank_down", "resolved"),
        ("error_storm", "firing"),  # at 120 s, when its inhibitor stopped
        ("bank_down", "firing"),  # no heartbeat within 30 s of 120 s
        ("error_storm", "resolved"),
        ("bank_down", "resolved"),  # the monitor closed at 600 s with bank_down firing
    ]
    assert bodies[2][2]["reason"] == "bank_down stopped firing"
    assert bodies[-1][2]["reason"] == "monitor closed"
    assert [e[:4] for e in sent(router)] == [
        (30, "bank_down", "firing", "sent"),
        (50, "error_storm", "firing", "inhibited"),
        (120, "bank_down", "resolved", "sent"),
        (120, "error_storm", "firing", "sent"),
        (150, "bank_down", "firing", "sent"),
        (230, "error_storm", "resolved", "sent"),
        (600, "bank_down", "ended", "sent"),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"backoff": float("nan")},
        {"backoff": -1},
        {"backoff": float("inf")},
        {"timeout": 0},
        {"timeout": float("nan")},
        {"timeout": "2"},
        {"backoff": True},
    ],
)
def test_webhook_timing_that_cannot_work_is_refused_at_once(bad):
    """backoff=nan used to be taken, then killed the sender thread at the first retry."""
    ((name, value),) = bad.items()
    with pytest.raises(ValueError, match=f"{name}={value!r} must be"):
        Webhook("http://127.0.0.1:1/", **bad)


def test_alertmanager_starts_at_is_when_a_for_rule_fired_not_when_it_went_pending():
    """Prometheus sends StartsAt = the instant the alert fired (after for_)."""
    clock = VirtualClock("2021-08-29T12:00:00Z")
    from hms_bus import Bus
    from hms_bus.monitor.alertmanager import webhook_body

    bus = Bus(clock=clock)
    rule = frequency("storm", "a.error", count=1, window=300, for_=100)
    with Monitor(bus, rule) as mon:
        bus.publish("a.error")
        clock.advance(400)
        records = list(mon.engine.records)
    bodies = [webhook_body(r, "pager")["alerts"][0] for r in records]
    assert [(b["status"], b["startsAt"]) for b in bodies] == [
        ("firing", "2021-08-29T12:01:40.000Z"),
        ("resolved", "2021-08-29T12:01:40.000Z"),
    ]
    assert bodies[1]["endsAt"] == "2021-08-29T12:05:00.000Z"


@pytest.mark.parametrize(
    "url", ["hooks.example.com/services/T0/B0/s3cr3tXYZ", "ftp://u:s3cr3tXYZ@h/x?token=s3cr3tXYZ"]
)
def test_a_mistyped_webhook_url_is_refused_without_showing_its_secret(url):
    with pytest.raises(ValueError, match="must start with http") as err:
        Webhook(url)
    assert "s3cr3tXYZ" not in str(err.value)


def test_a_webhook_url_scheme_in_capitals_is_taken():
    assert Webhook("HTTPS://hooks.example.com/x").name == "webhook:https://hooks.example.com/x"


def test_a_webhook_that_never_got_the_page_gets_no_resolved_notice(bus, clock):
    """As Alertmanager: a resolved notification follows only a firing one that was
    delivered. (Was: the endpoint got a resolved for an incident it never heard of.)"""
    with Hook(fail_first=2) as server:
        hook = Webhook(server.url, retries=1, backoff=0.01)
        with Monitor(bus, STORM, receivers=[hook]) as mon:
            for _ in range(3):
                bus.publish("bank.error", {"code": 502})
            clock.advance(1)
            mon.flush(10)
            clock.advance(600)
            mon.flush(10)
            log = mon.router.deliveries()
        assert list(zip(log["state"], log["status"], strict=True)) == [
            ("firing", "failed"),
            ("resolved", "not_sent"),
        ]
        assert server.bodies == []


def test_group_key_quotes_label_values_as_alertmanager_does():
    """Alertmanager writes groupKey with Go's strconv.Quote: printable characters stay,
    control characters become Go escapes."""
    from hms_bus.monitor.alertmanager import _group_key

    assert _group_key({"alertname": "x", "group": 'sn☃w "q" \\'}) == (
        '{}:{alertname="x", group="sn☃w \\"q\\" \\\\"}'
    )
    assert _group_key({"alertname": "x", "group": "a\x01\tb\u2028"}) == (
        '{}:{alertname="x", group="a\\x01\\tb\\u2028"}'
    )
