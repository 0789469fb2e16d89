"""Writing a report folder safely: check it before the work, write it atomically after.

:func:`check_out` runs before a simulation starts, so a folder that cannot
be written costs nothing. :func:`write_all` writes every file under a
temporary name first and renames them into place only when all are
written; a failure removes the temporaries (and the folder, if it made it),
so a report is never half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

__all__ = ["check_out", "write_all", "MARKER"]

MARKER = ".simulations-report.json"
"""The file a report folder keeps of what the kit wrote there (each file's
SHA-256), so a later run may replace those files and no other."""


def check_out(out: str | Path, names: Iterable[str], *, force: bool = False) -> Path:
    """``out`` as a Path, after checking that files ``names`` can be written there;
    a ValueError says what is in the way.

    A file ``names`` would replace must have been written there by the kit and
    left as it was (see :data:`MARKER`); any other (a file of yours, a report
    edited by hand) is refused unless ``force``. Other files are left alone."""
    out = Path(out).expanduser()
    names = list(names)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} is a file; give a folder for the report")
    for name in names:
        target = out / name
        if target.is_dir():
            raise ValueError(
                f"{str(target)!r} is a folder, where the report writes the file {name}; "
                f"remove it or give another output folder"
            )
    theirs = [] if force or not out.is_dir() else foreign(out, names)
    if theirs:
        more = f" (and {len(theirs) - 1} more)" if len(theirs) > 1 else ""
        raise ValueError(
            f"{str(out / theirs[0])!r}{more} was not written by an earlier run of this kit "
            f"(or was changed since), and the report would replace it; give a new or empty "
            f"folder, move it away, or add --force (force=True from Python) to replace it"
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
        kept = {
            name: digest
            for name, digest in (_manifest(out) or {}).items()
            if name not in writers and (out / name).is_file() and _sha256(out / name) == digest
        }
        written = {name: _sha256(tmp) for name, tmp in zip(writers, temps, strict=True)}
        marker = out / f".{MARKER}.{os.getpid()}.tmp"
        temps.append(marker)
        record = {"written_by": "simulations", "files": {**kept, **written}}
        marker.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        paths = {}
        for (name, _), tmp in zip(writers.items(), temps, strict=False):
            os.replace(tmp, out / name)
            paths[name] = out / name
        os.replace(marker, out / MARKER)
        return paths
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise


def foreign(out: Path, names: Iterable[str]) -> list[str]:
    """Those of ``names`` (and the marker) present in ``out`` that the kit did not
    write there, or that changed since it did."""
    manifest = _manifest(out)
    found = []
    for name in names:
        target = out / name
        if (target.exists() or target.is_symlink()) and not target.is_dir():
            if manifest is None or manifest.get(name) != _sha256(target):
                found.append(name)
    if (out / MARKER).exists() and manifest is None:
        found.append(MARKER)
    return found


def _manifest(out: Path) -> dict[str, str] | None:
    """The marker's record of files the kit wrote in ``out``: name -> SHA-256,
    or None when there is no marker the kit wrote."""
    try:
        record = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("written_by") != "simulations":
        return None
    files = record.get("files")
    if not isinstance(files, dict):
        return None
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)}


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()
