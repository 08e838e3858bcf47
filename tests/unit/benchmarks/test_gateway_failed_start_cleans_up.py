"""A threaded gateway that fails to start leaves no loop thread behind and can be started again.

Binding fails when the port is taken.  The event-loop thread then kept running with nothing
to serve, and the next ``start()`` took that loop for a started gateway and raised "the
gateway is not started" instead of trying again.
"""

from __future__ import annotations

import socket
import threading

import pytest

from benchmarks.gateway import ThreadedKinesisGateway

BACKEND = "http://127.0.0.1:9"  # never called: nothing is sent through the gateway


def _gateway_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "kinesis-gateway")


def test_failed_start_stops_its_thread_and_a_later_start_binds() -> None:
    before = _gateway_threads()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    gateway = ThreadedKinesisGateway(BACKEND, port=port)
    try:
        with pytest.raises(OSError):
            gateway.start(timeout=10)
        assert _gateway_threads() == before
        taken.close()
        assert gateway.start(timeout=10) == f"http://127.0.0.1:{port}"
        assert _gateway_threads() == before + 1
    finally:
        taken.close()
        gateway.stop(timeout=10)
    assert _gateway_threads() == before
