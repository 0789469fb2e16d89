"""The throw-away nats-server helper stops and cleans up on every exit path."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent entry is left


@pytest.mark.skipif(sys.platform != "linux", reason="uses Linux's parent-death signal")
def test_server_stops_when_the_process_that_started_it_is_killed():
    code = (
        "from hms_bus.server import NatsServer\n"
        "s = NatsServer().start()\n"
        "print(s.proc.pid, s.store, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    pid, store = parent.stdout.readline().split()
    pid = int(pid)
    assert _alive(pid)
    parent.kill()
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # A SIGKILLed parent cannot remove its store; this test made it, so it does.
    shutil.rmtree(store, ignore_errors=True)
    assert not _alive(pid)


def _server_pid(store: Path) -> int | None:
    """The pid of the nats-server whose config lives in ``store``, if one runs."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(str(store).encode() in part for part in cmd) and _alive(int(proc.name)):
                return int(proc.name)
    return None


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_server_command_stops_and_removes_its_store_on_sigterm_and_ctrl_c(tmp_path, how):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HMS_BUS_TMPDIR": str(tmp_path)}
    cli = subprocess.Popen(
        [sys.executable, "-m", "hms_bus", "server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = cli.stdout.readline()
        assert "nats-server with JetStream on nats://127.0.0.1:" in first
        (store,) = tmp_path.iterdir()
        assert store.name.startswith("hms-nats-")
        assert _server_pid(store) is not None
        cli.send_signal(how)
        assert cli.wait(10) == 0
        assert "Traceback" not in cli.stderr.read()
    finally:
        cli.kill()
        cli.stdout.close()
        cli.stderr.close()
    assert list(tmp_path.iterdir()) == []
    assert _server_pid(store) is None


def test_session_fails_when_the_kit_leaves_a_temporary_folder(pytester, monkeypatch):
    """The suite-wide check in conftest.py bites: a store left behind fails the run."""
    monkeypatch.delenv("HMS_BUS_TMPDIR")
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyfile(ipc_kernels=(ROOT / "tests" / "ipc_kernels.py").read_text())
    pytester.makepyfile(
        test_tidy="def test_tidy():\n    from hms_bus.server import NatsServer\n"
        "    NatsServer().stop()\n",
        test_leak="def test_leak():\n    from hms_bus.server import NatsServer\n"
        "    NatsServer()  # makes its store, never stopped\n",
    )
    tidy = pytester.runpytest_subprocess("test_tidy.py")
    assert tidy.ret == pytest.ExitCode.OK
    leak = pytester.runpytest_subprocess("test_leak.py")
    assert leak.ret == pytest.ExitCode.TESTS_FAILED
    leak.stdout.fnmatch_lines(["*left kit-made temporary folders behind: hms-nats-*"])
