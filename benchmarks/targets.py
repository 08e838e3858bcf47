"""Where a run sends: the embedded local target, real Kinesis, or an MSK/Kafka cluster.

``local`` needs no account and no install beyond ``pip``: moto's Kinesis server runs in this
process, behind :class:`~shardline.localstack.gateway.ThreadedKinesisGateway` so AWS's
per-shard limits apply.  Both are stopped when the run ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

from shardline.localstack.gateway import GatewayStatsSnapshot, ShardLimits, ThreadedKinesisGateway

__all__ = ["KinesisTarget", "embedded_local_target"]


@dataclass
class KinesisTarget:
    """A Kinesis endpoint (``None``: the standard AWS configuration decides) and, locally, its gateway."""

    name: str
    endpoint_url: str | None
    gateway: ThreadedKinesisGateway | None = None

    def gateway_stats(self) -> GatewayStatsSnapshot | None:
        return self.gateway.stats() if self.gateway is not None else None


@contextlib.contextmanager
def embedded_local_target(limits: ShardLimits | None = None) -> Iterator[KinesisTarget]:
    """moto's Kinesis in-process behind the limit-enforcing gateway; dummy credentials if none set."""
    from moto.server import ThreadedMotoServer

    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    gateway = ThreadedKinesisGateway(f"http://{host}:{port}", limits=limits)
    try:
        endpoint = gateway.start()
        yield KinesisTarget("local", endpoint, gateway)
    finally:
        gateway.stop()
        server.stop()
