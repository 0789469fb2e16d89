"""The bus's stream: find it, or create it; never change one we did not create.

On connecting, :func:`ensure_stream` looks the stream up by name.

* Missing: it is created with the settings asked for (else the defaults),
  unless the backend is read-only, which never creates anything.
* Present: it must capture ``<prefix>.>`` and keep messages by limits (not
  a work queue, which deletes what is read). A stream with the right name
  but other subjects belongs to someone else and is refused, untouched. The
  settings asked for explicitly (``retention``, ``max_retained``,
  ``max_bytes``, ``replicas``, ``duplicate_window``) are compared with the
  stream's; any difference is refused with a list of them, unless
  ``update=1`` asks to rewrite the stream. Settings left out are not
  compared: a plain URL connects to whatever stream is there.

Refusals the server gives for good (a duplicate window longer than the
retention, more replicas than servers, subjects another stream captures, no
JetStream at all) are raised within seconds, with the server's own words.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import nats.errors
import nats.js.errors
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from ...errors import HmsBusError
from ..retry import AGAIN, FINAL, GRACE, retry
from .connection import HOW_TO_START, NatsOptions

__all__ = ["ensure_stream", "differences"]

log = logging.getLogger("hms_bus.nats")

SETUP_BUDGET_S = 15.0
"""How long, beyond ``connect_timeout``, setup waits through timeouts (a new
cluster takes about 5 s to elect a leader), in seconds."""

FINAL_CODES = {10052, 10058, 10065, 10074}
"""JetStream error codes that will not pass: invalid configuration, a stream
that exists with other settings, overlapping subjects, replicas on a server
without a cluster."""

_NAMES = {
    "max_age": "retention",
    "max_msgs": "max_retained",
    "max_bytes": "max_bytes",
    "num_replicas": "replicas",
    "duplicate_window": "duplicate_window",
}


def _judge(exc: Exception) -> str:
    if isinstance(exc, HmsBusError):
        return FINAL
    if isinstance(exc, (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError)):
        return GRACE  # no JetStream; or a server still starting
    if isinstance(exc, nats.js.errors.APIError) and exc.err_code:
        return FINAL if exc.err_code in FINAL_CODES else GRACE
    return AGAIN  # timeouts, a connection being re-established


def _show(field: str, value: Any) -> str:
    if field in ("max_age", "duplicate_window"):
        return "no limit" if not value else f"{value:g} s"
    if value is None or value < 0:
        return "no limit"
    return f"{value:,}" + (" bytes" if field == "max_bytes" else "")


def _value(cfg: StreamConfig, field: str) -> float | int:
    value = getattr(cfg, field)
    if field in ("max_age", "duplicate_window"):
        return float(value or 0.0)
    return -1 if value is None else int(value)


def differences(existing: StreamConfig, asked: dict[str, float | int]) -> list[str]:
    """``retention: 86400 s, asked 120 s``, one line per setting that differs."""
    out = []
    for field, want in asked.items():
        have = _value(existing, field)
        if not math.isclose(have, want, rel_tol=1e-9, abs_tol=1e-6):
            out.append(f"{_NAMES[field]} {_show(field, have)} (asked {_show(field, want)})")
    return out


def _policy(cfg: StreamConfig) -> str:
    value = cfg.retention
    return str(getattr(value, "value", value) or "limits")


async def ensure_stream(jsm: Any, options: NatsOptions) -> StreamConfig:
    """Find or create the stream ``options`` names; return its configuration."""
    label, name = options.label, options.stream

    async def info() -> StreamConfig | None:
        try:
            return (await jsm.stream_info(name)).config
        except nats.js.errors.NotFoundError:
            return None

    async def create() -> StreamConfig | None:
        try:
            return (await jsm.add_stream(_config(options))).config
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code == 10058:
                return None  # made by someone else a moment ago: look again
            raise

    budget = options.connect_timeout + SETUP_BUDGET_S
    try:
        for _ in range(3):
            existing = await retry(info, judge=_judge, budget=budget)
            if existing is None:
                if options.readonly:
                    raise HmsBusError(
                        f"there is no stream {name!r} at {label}, so nothing to read: no bus "
                        f"has published there yet, or it uses another ?stream= and ?prefix="
                    )
                created = await retry(create, judge=_judge, budget=budget)
                if created is not None:
                    log.info("created stream %s on %s at %s", name, options.subjects, label)
                    return created
                continue
            return await _check(jsm, existing, options)
        raise HmsBusError(f"stream {name!r} at {label} keeps appearing and disappearing")
    except HmsBusError:
        raise
    except Exception as exc:
        raise _explain(exc, options, budget) from None


async def _check(jsm: Any, existing: StreamConfig, options: NatsOptions) -> StreamConfig:
    """Use ``existing`` as it is, update it if asked, or refuse; never change it otherwise."""
    label, name, subjects = options.label, options.stream, options.subjects
    if existing.mirror is not None:
        raise HmsBusError(
            f"stream {name!r} at {label} is a mirror of {existing.mirror.name!r}: it takes "
            f"no publishes of its own and was left untouched; give the bus a stream of its "
            f"own, e.g. ?stream=HMS_BUS_2 (and a ?prefix= of its own)"
        )
    if subjects not in (existing.subjects or []):
        raise HmsBusError(
            f"stream {name!r} at {label} captures {existing.subjects or 'no subjects'}, not "
            f"{subjects!r}: it belongs to another application and was left untouched; give "
            f"the bus a stream of its own, e.g. ?stream=HMS_BUS_2 (and a ?prefix= of its own)"
        )
    if _policy(existing) != "limits":
        raise HmsBusError(
            f"stream {name!r} at {label} is a {_policy(existing)} stream, which deletes "
            f"messages once they are read or unwanted; the bus needs a limits stream, so it "
            f"was left untouched: use another ?stream= (and ?prefix=)"
        )
    if options.readonly:
        return existing
    diffs = differences(existing, options.asked)
    if not diffs:
        return existing
    listed = "; ".join(diffs)
    if not options.update:
        raise HmsBusError(
            f"stream {name!r} at {label} exists with other settings than asked: {listed}. "
            f"It was left unchanged. To use it as it is, leave those options out; to change "
            f"it for every bus that shares it, add ?update=1; or use a stream of your own, "
            f"e.g. ?stream=HMS_BUS_2&prefix=hms2"
        )
    for field, want in options.asked.items():
        setattr(existing, field, want)
    try:
        updated = (await jsm.update_stream(existing)).config
    except nats.js.errors.APIError as exc:
        raise HmsBusError(
            f"NATS at {label} refused to update stream {name!r} ({listed}): "
            f"{exc.description} (error {exc.err_code}); it was left unchanged"
        ) from None
    log.warning("updated stream %s at %s as asked (update=1): %s", name, label, listed)
    return updated


def _config(options: NatsOptions) -> StreamConfig:
    return StreamConfig(
        name=options.stream,
        description="events of an hms_bus event bus",
        subjects=[options.subjects],
        discard=DiscardPolicy.OLD,
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        **options.wanted(),
    )


def _explain(exc: Exception, options: NatsOptions, budget: float) -> HmsBusError:
    label, name = options.label, options.stream
    if isinstance(exc, (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError)):
        return HmsBusError(
            f"NATS at {label} has no JetStream: its stream requests get no responders; "
            f"start the server with JetStream on (nats-server -js), or {HOW_TO_START}"
        )
    if isinstance(exc, nats.js.errors.APIError) and exc.err_code:
        code = exc.err_code
        if code == 10065:
            advice = (
                f"another stream's subjects overlap {options.subjects!r} (list the streams "
                f"with `nats stream ls`); give the bus a prefix and stream of its own, e.g. "
                f"?stream=HMS_BUS_2&prefix=hms2"
            )
        elif code in (10074, 10005):
            replicas = options.wanted()["num_replicas"]
            advice = (
                f"replicas={replicas} needs a cluster of at least {replicas} JetStream "
                f"servers; lower ?replicas="
            )
        elif code == 10047:
            advice = (
                f"the server cannot reserve max_bytes={options.wanted()['max_bytes']:,} for "
                f"it; lower ?max_bytes=, or give the server more storage (max_file_store)"
            )
        elif code == 10052:
            advice = (
                "change the setting it names: retention, max_retained, max_bytes, "
                "duplicate_window (at most the retention) or prefix"
            )
        else:
            advice = "check the URL's retention, max_retained, max_bytes and duplicate_window"
        return HmsBusError(
            f"NATS at {label} refused to create stream {name!r} on {options.subjects!r}: "
            f"{exc.description} (error {code}); {advice}"
        )
    return HmsBusError(
        f"NATS at {label} did not set up stream {name!r} within {budget:g} s "
        f"({type(exc).__name__}: {exc}); is JetStream's cluster up? {HOW_TO_START}"
    )
