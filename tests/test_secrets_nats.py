"""A planted-secret test: secrets given to the kit never show anywhere.

Three secrets are planted: a password in ``HMS_BUS_URL`` (a real nats-server
started with that user and password), a token in a webhook URL, and an
``Authorization`` header. Then everything an operator or a learner does runs:
publishes, a failing subscriber that quotes the URL, a refused connection and
a wrong password, a monitor whose webhook fails, ``status()``, the command
line, and the ``repr`` a notebook shows. Logs are captured at DEBUG and every
event on ``>`` is kept; the word ``PLANTED`` (in each secret) appears nowhere.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest

pytest.importorskip("nats")

import hms_bus  # noqa: E402
from hms_bus import HmsBusError  # noqa: E402
from hms_bus.__main__ import main  # noqa: E402
from hms_bus.monitor import Monitor, Webhook, frequency  # noqa: E402
from hms_bus.server import NatsServer, find_nats_server, free_port  # noqa: E402

try:
    find_nats_server()
except HmsBusError as exc:  # pragma: no cover - the dev extra installs it
    pytest.skip(str(exc), allow_module_level=True)

MARK = "PLANTED"
PASSWORD = "pw-PLANTED-1f9c"
WRONG_PASSWORD = "wrong-PLANTED-4c6e"
HOOK_TOKEN = "tok-PLANTED-2e8d"
BEARER = "auth-PLANTED-3b7a"


class FailingHook:
    """A webhook endpoint that answers every POST with HTTP 500."""

    def __init__(self) -> None:
        self.posts = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts += 1
                self.send_response(500)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{port}/services/T0SEC/B0SEC/{HOOK_TOKEN}"
        self.thread = Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FailingHook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def auth_server():
    with NatsServer(user="alice", password=PASSWORD) as server:
        yield server


def _cli(*args: str, env_url: str) -> str:
    env = {**os.environ, "HMS_BUS_URL": env_url}
    out = subprocess.run(
        [sys.executable, "-m", "hms_bus", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    return f"$ {' '.join(args)} -> {out.returncode}\n{out.stdout}{out.stderr}"


def test_planted_secrets_never_leak_nats(auth_server, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    host = f"127.0.0.1:{auth_server.port}"
    url = f"nats://alice:{PASSWORD}@{host}?stream=SECRETS_TEST&prefix=secrets"
    monkeypatch.setenv("HMS_BUS_URL", url)
    shown: dict[str, str] = {}  # where -> what the kit showed there
    before = hms_bus.bus._default
    hms_bus.bus._default = None
    try:
        with FailingHook() as endpoint:
            bus = hms_bus.get_bus()  # from HMS_BUS_URL
            seen = []
            bus.subscribe(">", seen.append, name="everything")

            def forward(ev):
                raise ConnectionError(f"cannot forward {ev.id} to {os.environ['HMS_BUS_URL']}")

            bus.subscribe("orders.*", forward)
            hook = Webhook(
                endpoint.url,
                headers={"Authorization": f"Bearer {BEARER}"},
                retries=1,
                backoff=0.01,
            )
            mon = Monitor(bus, [frequency("bank_storm", "bank.error", count=1, window=60)])
            mon.router.route(hook)
            for n in range(3):
                hms_bus.publish("orders.new", {"n": n})
            hms_bus.publish("bank.error", {"code": 502})
            deadline = time.monotonic() + 15
            while not any(e["status"] == "failed" for e in mon.router.log):
                assert time.monotonic() < deadline, f"the webhook never failed: {mon.router.log}"
                time.sleep(0.05)
            bus.flush(30)

            for place, bad in (("refused", f"127.0.0.1:{free_port()}"), ("wrong password", "")):
                target = f"nats://alice:{PASSWORD}@{bad}" if bad else url
                if not bad:
                    target = target.replace(PASSWORD, WRONG_PASSWORD)
                with pytest.raises(HmsBusError) as info:
                    hms_bus.bus._from_target(target)
                shown[f"error: {place}"] = str(info.value)

            shown["repr(bus)"] = repr(bus)
            shown["repr(bus.backend)"] = repr(bus.backend)
            shown["status()"] = json.dumps(bus.status())
            shown["repr(monitor)"] = repr(mon)
            shown["repr(webhook)"] = repr(hook)
            shown["repr(router)"] = repr(mon.router)
            shown["deliveries()"] = mon.router.deliveries().to_string()
            shown["deliveries() html"] = mon.router.deliveries()._repr_html_()
            shown["router.log"] = repr(mon.router.log)
            mon.close()  # the ended notice fails too
            mon.flush(10)
            shown["timeline()"] = mon.timeline().to_string()
            bus.flush(30)

            shown["cli publish"] = _cli("publish", "orders.cli", '{"n": 9}', env_url=url)
            shown["cli replay"] = _cli("replay", "orders.*", "--limit", "2", env_url=url)
            wrong = url.replace(PASSWORD, WRONG_PASSWORD)
            shown["cli wrong password"] = _cli("publish", "orders.cli", env_url=wrong)
            main(["tail", ">", "--since", "1h", "--count", "1"])
            out, err = capsys.readouterr()
            shown["cli tail (in process)"] = out + err

            bus.flush(30)
            shown["events on >"] = json.dumps([ev.to_dict() for ev in seen])
            shown["replay(>)"] = json.dumps([ev.to_dict() for ev in bus.replay(">")])
            bus.close()
            shown["status() closed"] = json.dumps(bus.status())
    finally:
        hms_bus.bus._default = before
    shown["logs"] = caplog.text

    leaks = sorted(place for place, text in shown.items() if MARK in text)
    assert not leaks, (
        "secrets shown in: "
        + ", ".join(leaks)
        + "\n\n"
        + "\n\n".join(f"== {place}\n{shown[place][:2000]}" for place in leaks)
    )
    # ... and the places looked at held what they should, so the check was not vacuous.
    topics = {ev.topic for ev in seen}
    assert {"orders.new", "bus.subscriber_error", "monitor.delivery_failed"} <= topics
    assert f"nats://alice:***@{host}" in shown["repr(bus)"]
    assert "webhook:http://127.0.0.1" in shown["deliveries()"]
    assert "HTTP 500" in shown["logs"] and "cannot forward" in shown["logs"]
    assert '"orders.cli"' in shown["cli publish"] and "# tailing" in shown["cli tail (in process)"]
    assert endpoint.posts >= 2
