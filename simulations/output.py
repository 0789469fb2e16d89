"""Writing a report folder safely: check it before the work, write it atomically after.

:func:`check_out` runs before a simulation starts, so a folder that cannot
be written costs nothing. :func:`write_all` writes every file under a
temporary name first and renames them into place only when all are
written; a failure removes the temporaries (and the folder, if it made it),
so a report is never half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

__all__ = ["check_out", "write_all"]


def check_out(out: str | Path, names: Iterable[str]) -> Path:
    """``out`` as a Path, after checking that files ``names`` can be written there;
    a ValueError says what is in the way."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} is a file; give a folder for the report")
    for name in names:
        target = out / name
        if target.is_dir():
            raise ValueError(
                f"{str(target)!r} is a folder, where the report writes the file {name}; "
                f"remove it or give another output folder"
            )
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"cannot make output folder {str(out)!r}: {str(probe)!r} is a file")
    try:
        Path(tempfile.mkdtemp(dir=probe, prefix=".hms-write-test-")).rmdir()
    except OSError as exc:
        raise ValueError(f"cannot write to {str(out)!r}: {exc.strerror or exc}") from None
    return out


def write_all(out: str | Path, writers: Mapping[str, Callable[[Path], None]]) -> dict[str, Path]:
    """Write each file ``name`` with ``writers[name](path)``, all or nothing;
    return the final paths."""
    out = Path(out).expanduser()
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    try:
        for name, write in writers.items():
            tmp = out / f".{name}.{os.getpid()}.tmp"
            temps.append(tmp)
            write(tmp)
        paths = {}
        for (name, _), tmp in zip(writers.items(), temps, strict=True):
            os.replace(tmp, out / name)
            paths[name] = out / name
        return paths
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise
