"""Every exercise checks the learner: blank fails to count, solutions pass, wrong answers fail.

An exercise is three cells in a notebook: an *answer* cell (tag ``answer``)
that starts as ``name = ...``, a *check* cell (tag ``check``) that prints
"N.N: not answered yet" while the answer is Ellipsis and otherwise asserts
and prints "N.N: solved", and a Markdown *solution* (tag ``solution``) folded
in ``<details>`` with the code in a ```python block. The solution is never
executed in the learner's path.

The stored outputs (compared by nbval) prove that Run All on an untouched
notebook reports every exercise as not answered. The injection test below
runs each notebook once in one kernel and, at every exercise, puts wrong
answers and then the solution into the answer cell, runs the check each time,
and asserts that the wrong ones fail and the solution passes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

WRONG: dict[str, list[str]] = {
    "1.1": ["predicted = 0", "predicted = 2"],
    "2.1": [
        # a dict typed to look like the event
        'failure = {"ts": "2021-08-29T18:00:45.000Z", "topic": "payments.failed",'
        ' "data": {"user": "CIT-42"}, "src": "x", "id": "evt-00000000-000001"}',
        # the notebook's own bus, not a new one
        'failure = publish("payments.failed", {"user": "CIT-42"})',
    ],
    "2.2": [
        "def to_json(raw):\n"
        '    return {"flags": ["audit", "frozen"], "at": "2021-08-29T18:05:00+00:00"}',
        'def to_json(raw):\n    return {"flags": list(raw["flags"]), "at": str(raw["at"])}',
    ],
    "2.3": [
        'def doubled(data):\n    return {"user": "CIT-883", "amount": 2000}',
        # the amount typed in, and the other keys dropped
        'def doubled(data):\n    return {"user": data["user"], "amount": 2000}',
        'def doubled(data):\n    return {"user": data["user"], "amount": data["amount"] * 2}',
        'def doubled(data):\n    data["amount"] *= 2\n    return data',
        "def doubled(data):\n    return data",
    ],
    "3.1": ['p = "*.*"', 'p = "bank.error"', 'p = ">"'],
    "3.2": ['hits = ["hms.ach", "hms.ach.payments.sent", "hms.hlt.evac"]'],
    "3.3": [
        'fixed = "alerts.err*"',
        'fixed = "alerts.error_storm"',
        # valid, but pages on every event
        'fixed = ">"',
        'fixed = "*.*"',
    ],
    "4.1": [
        'predicted = [("relay", "x.first"), ("relay", "x.second"),'
        ' ("record", "x.second"), ("record", "x.first")]'
    ],
    "4.2": [
        "def fraud_check(ev):\n    pass",
        "def fraud_check(ev):\n    raise ValueError('every payment')",
        # the one big payment the text names, and "5000 or more"
        "def fraud_check(ev):\n    if ev['data']['amount'] == 9000:\n        raise ValueError()",
        "def fraud_check(ev):\n    if ev['data']['amount'] >= 5000:\n        raise ValueError()",
    ],
    "4.3": [
        "def tick_threads(bus, threads, each):\n    return 1500",
        "def tick_threads(bus, threads, each):\n    return threads * each",
        # no thread: the local bus delivers as it publishes, so the count alone is right
        "def tick_threads(bus, threads, each):\n"
        "    for _ in range(threads * each):\n"
        '        bus.publish("load.tick")',
        # one thread doing every thread's work
        "def tick_threads(bus, threads, each):\n"
        "    t = threading.Thread(\n"
        '        target=lambda: [bus.publish("load.tick") for _ in range(threads * each)])\n'
        "    t.start()\n"
        "    t.join()",
    ],
    "5.1": [
        "def bank_errors_since(hours):\n    return 3",
        'def bank_errors_since(hours):\n    return len(replay("bank.error"))',
        # the counts of the hours the text used to name, typed in
        "def bank_errors_since(hours):\n    return {12: 3, 6: 2, 24: 6}[hours]",
    ],
    "5.2": [
        "def readings_kept(retention, max_retained):\n    return 20",
        "def readings_kept(retention, max_retained):\n"
        "    return min(max_retained, retention // 60)",
        # arithmetic instead of a bus, right for whole minutes up to an hour only
        "def readings_kept(retention, max_retained):\n"
        "    return min(max_retained, retention // 60 - 1)",
    ],
    "5.3": [
        'catch_up = [e for e in replay("payments.sent") if e["ts"] >= "2021-08-30T03:00:00Z"]',
        'catch_up = []\nbus.subscribe("payments.sent", catch_up.append)',
    ],
    "6.1": ["predicted = 20", "predicted = 24"],
    "6.2": [
        f'slow_rule = threshold("bank_slow", "bank.response", field="latency_ms", agg="{agg}",'
        f" above={above}, window=60)"
        for agg, above in [
            *((agg, 2000) for agg in ("p95", "max", "min", "p90", "p75", "p60", "p50", "p10")),
            *((agg, 2000) for agg in ("p95i", "p90i", "p50i", "p10i")),
            ("p90", 2500),  # a percentile with a bound moved to fit the tests
            ("mean", 1995),
        ]
    ],
    "6.3": [
        'longest, longest_s = "payments_failing", 470.0',
        'longest, longest_s = "bank_slow", 0',
    ],
    "7.1": [
        f'one_page = frequency("error_storm", "*.error", count=5, window=60, keep_firing_for={s})'
        for s in (60, 300)
    ]
    + [
        # another rule: a longer window does the work keep_firing_for should do
        'one_page = frequency("error_storm", "*.error", count=5, window=200, keep_firing_for=10)',
        'one_page = frequency("error_storm", "*.error", count=4, window=60, keep_firing_for=80)',
        'one_page = frequency("error_storm", "*.error", count=5, window=60, keep_firing_for=85)',
    ],
    "7.2": [
        "def plan_maintenance(router):\n"
        '    router.silence(rule="error_storm", start="2021-08-29T14:00:00Z",'
        ' end="2021-08-29T14:30:00Z")',
        "def plan_maintenance(router):\n"
        '    router.silence(rule="error_storm", start="2021-08-29T00:00:00Z",'
        ' end="2021-08-30T00:00:00Z")',
        # maintenance that "runs late", a silence without its comment, every alert muted
        "def plan_maintenance(router):\n"
        '    router.silence(rule="error_storm", start="2021-08-29T15:00:00Z",'
        ' end="2021-08-29T15:45:00Z", comment="bank maintenance")',
        "def plan_maintenance(router):\n"
        '    router.silence(rule="error_storm", start="2021-08-29T15:00:00Z",'
        ' end="2021-08-29T15:30:00Z")',
        "def plan_maintenance(router):\n"
        '    router.silence(rule="*", start="2021-08-29T15:00:00Z",'
        ' end="2021-08-29T15:30:00Z", comment="bank maintenance")',
    ],
    "7.3": [
        'expected = ["2m firing", "5m resolved"]',
        'expected = ["2m20s firing", "5m20s resolved"]',
    ],
    "8.1": [
        # the absence rule, and the error storm's resolve rather than the last one
        'first_rule, after_s, cleared_at = "payments_stalled", 600, "15:42"',
        'first_rule, after_s, cleared_at = "error_storm", 2.507, "15:35"',
        'first_rule, after_s, cleared_at = "error_storm", 2.507, "15:30"',  # the link, not alerts
    ],
    "8.2": [
        'failed_first_hour = day.summary["payments_failed"]',
        'ev = day.events\nfailed_first_hour = int((ev["topic"] == "payments.failed").sum())',
    ],
    "8.3": [
        "deaf = dict(threshold=5, window=60)",
        "deaf = dict(threshold=6, window=600)",
        # the storm still fires during the outage, only after another rule
        "deaf = dict(threshold=25, window=60)",
        # no outage at all, or one after the short day ends: nothing to miss
        "deaf = dict(outage_hours=0)",
        "deaf = dict(outage_start_h=9)",
    ],
    "9.1": [
        "def watch_failures(bus):\n    failures['n'] = 2818",
        "def watch_failures(bus):\n"
        "    bus.subscribe('payments.*', lambda ev: failures.update(n=failures['n'] + 1))",
    ],
    "9.2": ["dollars_at_noon = counters['dollars']", "dollars_at_noon = 12_000_000"],
    "10.1": ["predicted = 0"],
    "10.2": [
        # a second handle on the notebook's own bus publishes a new event, not the same one
        'rerun = bus\nagain = bus.publish("payments.sent", {"user": "CIT-883", "amount": 1000})',
        "rerun, again = bus, sent",
    ],
    "10.3": ["cli_ids = []", 'cli_ids = [e["id"] for e in replay("payments.*")]'],
    "11.1": [
        'def kafka_topic_of(topic):\n    return "hms." + topic',
        'def kafka_topic_of(topic):\n    return topic.split(".")[0]',
        'def kafka_topic_of(topic):\n    return "hms.payments"',
    ],
    "11.2": ["predicted = 1", "predicted = 4"],
    "11.3": [
        'ordered = hms_bus.use(cluster.url, clock=VirtualClock("2021-08-29T12:00:00Z"))\n'
        'ordered.publish("payments.sent", {})\nordered.publish("bank.error", {})',
        'ordered = hms_bus.use(cluster.url + "?single=hms.all",'
        ' clock=VirtualClock("2021-08-29T12:00:00Z"))\nordered.publish("payments.sent", {})',
    ],
    "12.1": ["quiet = 2", "quiet = 8", "quiet = 100"],
    "12.2": [
        'slow_night = Scenario.load("bank_outage").override({"slowdown.start_h": 3,'
        ' "slowdown.hours": 1})',
        'slow_night = Scenario.load("bank_slowdown").override({"slowdown.start_h": 3,'
        ' "slowdown.hours": 1, "monitor.threshold": 5})',
    ],
}
"""Wrong answers per exercise, each put into the answer cell in turn: typed
literals that skip the work, near misses, and the concept's usual mistake."""


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def text(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def exercises(nb: dict) -> list[dict]:
    """Each exercise's id, cell indexes and solution code, in notebook order."""
    cells = nb["cells"]
    found = []
    for i, cell in enumerate(cells):
        if "answer" not in tags(cell):
            continue
        number = re.match(r"# (\d+\.\d+): your answer", text(cell))
        assert number, f"answer cell {i} does not start with '# N.N: your answer'"
        check = cells[i + 1]
        assert "check" in tags(check), f"{number[1]}: the cell after the answer is not its check"
        solution = next(c for c in cells[i + 2 :] if "solution" in tags(c))
        code = re.search(r"```python\n(.*?)```", text(solution), re.S)
        assert code, f"{number[1]}: no ```python block in the solution"
        found.append(
            {
                "id": number[1],
                "answer": i,
                "check": i + 1,
                "solution": code[1],
                "markdown": text(solution),
            }
        )
    return found


PATHS = sorted(NOTEBOOKS.glob("[01][0-9]-*.ipynb"))
LESSONS = [p for p in PATHS if not p.name.startswith("00-")]
ALL = {ex["id"]: (p.name, ex) for p in LESSONS for ex in exercises(load(p))}


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_lesson_has_exercises_numbered_for_it(path):
    found = exercises(load(path))
    assert found, f"{path.name} has no exercises"
    number = int(path.name[:2])
    assert [ex["id"] for ex in found] == [f"{number}.{k}" for k in range(1, len(found) + 1)]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_untouched_notebook_reports_every_exercise_not_answered(path):
    """Run All on the stored notebook left every answer blank: each check
    printed "not answered yet" and nothing else (nbval compares that text)."""
    nb = load(path)
    for ex in exercises(nb):
        answer, check = nb["cells"][ex["answer"]], nb["cells"][ex["check"]]
        assert re.search(r"^\w+(, \w+)* = \.\.\.(, \.\.\.)*$|return \.\.\.$", text(answer), re.M), (
            text(answer)
        )
        printed = [
            (o["output_type"], text({"source": o.get("text", "")})) for o in check["outputs"]
        ]
        assert printed == [("stream", f"{ex['id']}: not answered yet\n")], printed


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_solutions_are_revealed_not_executed(path):
    nb = load(path)
    code = "\n".join(text(c) for c in nb["cells"] if c["cell_type"] == "code")
    for ex in exercises(nb):
        assert ex["markdown"].lstrip().startswith("<details><summary>Solution")
        assert ex["markdown"].rstrip().endswith("</details>")
        assert ex["solution"].strip() not in code, f"{ex['id']}: the solution is in a code cell"
    assert not any("solution" in tags(c) for c in nb["cells"] if c["cell_type"] == "code")


def test_every_exercise_has_wrong_answers_to_inject():
    assert set(WRONG) == set(ALL), set(WRONG) ^ set(ALL)
    assert all(WRONG.values())


def run_with_injections(path: Path) -> dict[str, dict[str, str]]:
    """Execute ``path`` in one kernel; at each exercise run every wrong answer
    and then the solution, each followed by the check. Returns, per exercise
    and variant, "solved", "not answered" or the error the check raised."""
    nbformat = pytest.importorskip("nbformat")
    from ipc_kernels import IpcAsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
    by_answer = {ex["answer"]: ex for ex in exercises(nb)}
    checks = {ex["check"] for ex in by_answer.values()}
    client = NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        kernel_manager_class=IpcAsyncKernelManager,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    results: dict[str, dict[str, str]] = {}

    def attempt(source: str, ex: dict) -> str:
        cells = [
            nbformat.v4.new_code_cell(source),
            nbformat.v4.new_code_cell(nb.cells[ex["check"]].source),
        ]
        try:
            for n, cell in enumerate(cells):
                client.execute_cell(cell, ex["answer"] + n)
        except CellExecutionError as err:
            last = str(err).strip().splitlines()[-1]
            return "error: " + re.sub(r"\x1b\[[0-9;]*m", "", last)
        printed = "".join(o.get("text", "") for o in cells[1].outputs)
        if f"{ex['id']}: solved" in printed:
            return "solved"
        return f"printed: {printed!r}"

    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or index in checks:
                continue
            if index in by_answer:
                ex = by_answer[index]
                outcome = {f"wrong {k}": attempt(src, ex) for k, src in enumerate(WRONG[ex["id"]])}
                outcome["solution"] = attempt(ex["solution"], ex)
                results[ex["id"]] = outcome
                continue
            client.execute_cell(cell, index)
    return results


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_solutions_pass_and_wrong_answers_fail(path):
    results = run_with_injections(path)
    assert set(results) == {ex["id"] for ex in exercises(load(path))}
    for number, outcome in results.items():
        assert outcome.pop("solution") == "solved", (number, results[number])
        for variant, got in outcome.items():
            assert got.startswith("error: "), f"{number} {variant} was accepted: {got}"
