"""The contract suite catches a backend that breaks the delivery order.

Each case runs part of the suite in a child pytest against one engine,
broken on purpose (see ``MUTANT`` in ``conftest.py``), and expects failures.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ORDER_TESTS = "kept_events_first or one_order_across or replayed_events_equal"


@pytest.mark.parametrize(
    ("engine", "mutant"),
    [
        ("memory", "reverse-read"),
        ("loopback", "swap-feed"),
        ("nats", "reverse-read"),
        ("nats", "swap-feed"),
    ],
)
def test_the_contract_catches_a_broken_delivery_order(engine, mutant):
    env = {**os.environ, "HMS_CONTRACT_MUTANT": mutant}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-p",
            "no:nbval",
            "-p",
            "no:hypothesispytest",
            "-p",
            "no:anyio",
            "tests/contract/test_contract_delivery.py",
            "tests/contract/test_contract_replay.py",
            "-k",
            f"{engine} and ({ORDER_TESTS})",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = out.stdout.strip().splitlines()[-1]
    assert out.returncode == 1, out.stdout[-2000:]
    assert " failed" in summary and "error" not in summary, summary
