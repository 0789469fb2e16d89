"""The package's own exception."""

from __future__ import annotations

__all__ = ["HmsBusError"]


class HmsBusError(Exception):
    """Something went wrong inside the bus or a backend (not a bad argument).

    Bad arguments raise the built-in ``ValueError`` or ``TypeError``.
    """
