"""One retry policy for every backend: back off, keep trying, give up for a reason.

A distributed backend meets two kinds of failure. Some pass on their own (a
cluster electing a leader, a server restarting): try again after a short
wait that doubles each time. Others never will (a setting the server
refuses, no JetStream at all): waiting only hides the reason, so they are
raised at once, or after a short grace when a cluster may still be forming.

:func:`retry` runs one operation under such a policy; :func:`backoff` is
the wait before attempt ``n``, which loops that re-send messages use too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["FINAL", "GRACE", "AGAIN", "backoff", "retry"]

T = TypeVar("T")

FINAL = "final"
"""Verdict: this failure will not pass; raise it now."""

GRACE = "grace"
"""Verdict: probably final, but a forming cluster may still get over it;
retry until ``grace`` seconds have passed."""

AGAIN = "again"
"""Verdict: transient; retry until ``budget`` seconds have passed."""


def backoff(attempt: int, first: float = 0.1, cap: float = 1.0) -> float:
    """Seconds to wait before retry ``attempt`` (1, 2, ...): ``first``, doubling, up to ``cap``."""
    return min(first * 2 ** max(0, attempt - 1), cap)


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    judge: Callable[[Exception], str],
    budget: float | None,
    grace: float = 2.5,
    first: float = 0.1,
    cap: float = 1.0,
    stop: Callable[[], bool] | None = None,
) -> T:
    """Await ``operation()`` until it succeeds, backing off between attempts.

    :param judge: says what an exception means: :data:`FINAL`,
        :data:`GRACE` or :data:`AGAIN`.
    :param budget: seconds after which even transient failures are raised;
        None retries them for as long as ``stop`` allows.
    :param grace: seconds for failures judged :data:`GRACE`.
    :param stop: asked before each wait; True re-raises the last failure
        (e.g. the connection was closed meanwhile).
    """
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            verdict = judge(exc)
            waited = time.monotonic() - started
            if (
                verdict == FINAL
                or (verdict == GRACE and waited >= grace)
                or (budget is not None and waited >= budget)
                or (stop is not None and stop())
            ):
                raise
        attempt += 1
        await asyncio.sleep(backoff(attempt, first, cap))
