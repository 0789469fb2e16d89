"""The chapter's code, run as written, shows what the chapter shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "simulations" / "quick_demo.py"


def test_quick_demo_runs_verbatim_and_prints_the_event():
    """Publish comes before subscribe in the demo; the event still arrives."""
    text = DEMO.read_text()
    assert 'publish("payments.sent", {"user":"CIT-883", "amount": 1000})' in text
    assert text.index("publish(") < text.index("subscribe(")
    out = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout == "🛰️  got event: payments.sent {'user': 'CIT-883', 'amount': 1000}\n"
    assert out.stderr == ""


def test_cheat_commands(default_bus, capsys):
    from hms_bus import publish, retention

    for n in range(12):
        publish("payments.sent", {"user": f"CIT-{n}", "amount": 1000})
    publish("payments.failed", {"user": "CIT-99"})
    # See last 10 payment events
    for e in retention.replay("payments.*")[-10:]:
        print(e)
    # Fire a manual test alert
    publish("alerts.test", {"msg": "hello from ops"})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    assert "'topic': 'payments.failed'" in lines[-1]
    assert "'user': 'CIT-3'" in lines[0]
    assert default_bus.replay("alerts.*")[0]["data"] == {"msg": "hello from ops"}


def test_chapter_patterns_work(default_bus, received):
    from hms_bus import publish, subscribe

    subscribe("*.error", received.append)
    subscribe("alerts.*", received.append)
    publish("bank.error", {"code": 503})
    publish("alerts.error_storm", {"count": 5})
    publish("payments.sent", {})
    assert [e["topic"] for e in received] == ["bank.error", "alerts.error_storm"]
