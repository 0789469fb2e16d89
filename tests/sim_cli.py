"""What the simulation CLI tests share: a check that a command failed cleanly, and a
fixture that fails a test if the CLI starts simulating. Import them by name."""

from __future__ import annotations

import pytest

from simulations.__main__ import main


def fails(argv, capsys, code=2):
    """Run the CLI; assert it failed with ``code`` and one line on stderr; return that line."""
    assert main(argv) == code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in out + err
    return lines[0]


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if the CLI starts simulating."""
    import simulations.__main__ as cli

    def never(*a, **kw):
        raise AssertionError("the CLI simulated before finding the mistake")

    monkeypatch.setattr(cli, "run", never)
    monkeypatch.setattr(cli, "sweep", never)
