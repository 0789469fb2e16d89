"""Notebook kernels that talk to the tests over Unix sockets instead of TCP ports.

A Jupyter kernel's five TCP ports are picked by binding to port 0 and letting
go, and the kernel binds them a moment later. With the suite on two cores,
anything else binding a port meanwhile (another kernel, a nats-server, a mock
Kafka broker) can take one, and a kernel client then talks to the wrong
process (seen: ``ValueError: b'<IDS|MSG>' is not in list``). Unix sockets with
unique names cannot collide.

Loaded as a pytest plugin by ``tests/conftest.py`` (and with ``-p ipc_kernels``
by tests that run nbval in a subprocess); it makes nbval start its kernels
this way. ``IpcAsyncKernelManager`` is for nbclient's ``kernel_manager_class``.
"""

from __future__ import annotations

import os
import tempfile
import uuid

import pytest
from jupyter_client import AsyncKernelManager, KernelManager
from traitlets import default


def _socket_prefix() -> str:
    # The kernel runs in the notebook's folder, the client wherever pytest
    # runs: an absolute path keeps both on the same sockets.
    return os.path.join(tempfile.gettempdir(), f"kernel-{uuid.uuid4().hex[:12]}")


class IpcKernelManager(KernelManager):
    """Kernels on Unix sockets under a fresh path, not TCP ports."""

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    @default("ip")
    def _default_ip(self) -> str:
        return _socket_prefix()


class IpcAsyncKernelManager(IpcKernelManager, AsyncKernelManager):
    """The same defaults, with AsyncKernelManager's methods (next in the MRO)."""


def pytest_configure(config: pytest.Config) -> None:
    try:
        import nbval.kernel
    except ImportError:  # pragma: no cover - nbval is in the dev extra
        return
    nbval.kernel.KernelManager = IpcKernelManager
