"""Where a run sends: the embedded local target, real Kinesis, or an MSK/Kafka cluster.

``local`` needs no account and no install beyond ``pip``: moto's Kinesis server runs behind
:class:`~benchmarks.gateway.ThreadedKinesisGateway` so AWS's per-shard limits apply.
By default both run in the bench process (threads), as the README's first command expects;
:func:`embedded_local_target_process` runs them in a child process instead, so the bench
process's CPU time is the client's alone.  Either way they are stopped when the run ends.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks.gateway import GatewayStatsSnapshot, ShardLimits, ThreadedKinesisGateway
from benchmarks.process_stats import process_cpu_seconds
from shardline.errors import ConfigurationError
from shardline.local.errors import LocalEmulatorError, ServerStartError

__all__ = [
    "BOOTSTRAP_ENV",
    "KafkaTarget",
    "KinesisTarget",
    "embedded_local_target",
    "embedded_local_target_process",
    "ensure_dummy_aws_credentials",
    "kafka_target",
]

_plaintext_log = logging.getLogger("stream_bench")

BOOTSTRAP_ENV = "SHARDLINE_KAFKA_BOOTSTRAP"
"""Environment variable naming the Kafka bootstrap servers when ``--bootstrap`` is not given."""

_CHILD_START_TIMEOUT_S = 120.0
_CHILD_STOP_TIMEOUT_S = 15.0
_CHILD_EXIT_WAIT_S = 5.0


@dataclass
class KinesisTarget:
    """A Kinesis endpoint (``None``: the standard AWS configuration decides) and what runs it.

    ``stats`` reads the local gateway's counters; ``emulator_cpu`` reads the CPU seconds of an
    emulator running in a child process.  ``in_process`` says whether the emulator shares the
    bench process (and so its interpreter lock) with the client.
    """

    name: str
    endpoint_url: str | None
    gateway: ThreadedKinesisGateway | None = None
    stats: Callable[[], GatewayStatsSnapshot] | None = None
    emulator_cpu: Callable[[], float] | None = None
    in_process: bool = False
    process_sentinel: int | None = None
    """Readable once the child process serving the target has exited (None: no such child);
    the run watches it (:mod:`benchmarks.targetwatch`) to stop when the target dies."""
    process_exit_code: Callable[[], int | None] = lambda: None

    @property
    def is_embedded(self) -> bool:
        return self.name == "local"

    def gateway_stats(self) -> GatewayStatsSnapshot | None:
        if self.stats is not None:
            return self.stats()
        return self.gateway.stats() if self.gateway is not None else None


@dataclass(frozen=True, slots=True)
class KafkaTarget:
    """An MSK or Kafka-protocol cluster, reached through ``client`` (a KafkaClientConfig)."""

    bootstrap: str
    client: Any


def ensure_dummy_aws_credentials() -> None:
    """Dummy credentials and region for local servers, unless real ones are configured."""
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)


@contextlib.contextmanager
def _moto_behind_gateway(limits: ShardLimits | None) -> Iterator[ThreadedKinesisGateway]:
    from moto.server import ThreadedMotoServer

    ensure_dummy_aws_credentials()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # moto loses a record to concurrent puts to one shard: the gateway queues its writes
    gateway = ThreadedKinesisGateway(f"http://{host}:{port}", limits=limits, serial_writes=True)
    try:
        gateway.start()
        yield gateway
    finally:
        gateway.stop()
        server.stop()


@contextlib.contextmanager
def embedded_local_target(limits: ShardLimits | None = None) -> Iterator[KinesisTarget]:
    """moto's Kinesis in this process behind the limit-enforcing gateway; dummy credentials if none set."""
    with _moto_behind_gateway(limits) as gateway:
        yield KinesisTarget("local", gateway.endpoint, gateway, in_process=True)


def _serve_embedded(connection: Any, limits: ShardLimits | None) -> None:
    """Child process: serve the embedded target until told to stop; answer stats and CPU requests.

    The child shares the terminal's process group, so a Ctrl-C reaches it as well as the
    parent.  It ignores SIGINT: the parent handles the interrupt, still asks the child for its
    counters and CPU time while it writes the interrupted result, and then stops it by its
    handle (or the child sees the pipe close when the parent is gone).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _moto_behind_gateway(limits) as gateway:
            connection.send(("ready", gateway.endpoint))
            while True:
                request = connection.recv()
                if request == "stats":
                    connection.send(("stats", gateway.stats()))
                elif request == "cpu":
                    connection.send(("cpu", process_cpu_seconds()))
                else:
                    break
    except EOFError:  # the parent went away: stop serving
        return
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it typed
        with contextlib.suppress(Exception):
            connection.send(("error", f"{type(exc).__name__}: {exc}"))


class _ChildTarget:
    """The parent's handle on the child process running the embedded target."""

    def __init__(self, limits: ShardLimits | None) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        self.process = context.Process(
            target=_serve_embedded, args=(child_end, limits), name="stream-bench-target", daemon=True
        )
        self.process.start()
        child_end.close()

    def _ask(self, request: str, timeout: float = 30.0) -> Any:
        self._connection.send(request)
        return self._receive(request, timeout)

    def _receive(self, expected: str, timeout: float) -> Any:
        if not self._connection.poll(timeout):
            error = ServerStartError if expected == "ready" else LocalEmulatorError
            raise error(f"the embedded target process did not answer {expected!r} in {timeout:g} s")
        kind, value = self._connection.recv()
        if kind == "error":
            raise ServerStartError(f"the embedded target process failed: {value}")
        return value

    def wait_ready(self) -> str:
        endpoint: str = self._receive("ready", _CHILD_START_TIMEOUT_S)
        return endpoint

    def stats(self) -> GatewayStatsSnapshot:
        snapshot: GatewayStatsSnapshot = self._ask("stats")
        return snapshot

    def cpu(self) -> float:
        return float(self._ask("cpu"))

    def exit_code(self) -> int | None:
        """The child's exit code once it has exited (waited for briefly: its sentinel fires
        as it exits, a moment before it can be reaped)."""
        self.process.join(_CHILD_EXIT_WAIT_S)
        return self.process.exitcode

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._connection.send("stop")
        self.process.join(_CHILD_STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(_CHILD_STOP_TIMEOUT_S)
        self._connection.close()


@contextlib.contextmanager
def embedded_local_target_process(limits: ShardLimits | None = None) -> Iterator[KinesisTarget]:
    """The embedded target (moto + gateway) in a child process started and stopped by its handle.

    The bench process then holds only the client, so its CPU time is the client's, and the
    child's CPU time is the emulator's.
    """
    ensure_dummy_aws_credentials()
    child = _ChildTarget(limits)
    try:
        endpoint = child.wait_ready()
        yield KinesisTarget(
            "local",
            endpoint,
            stats=child.stats,
            emulator_cpu=child.cpu,
            in_process=False,
            process_sentinel=child.process.sentinel,
            process_exit_code=child.exit_code,
        )
    finally:
        child.stop()


def kafka_target(bootstrap: str | None, security: str = "plaintext") -> KafkaTarget:
    """The cluster to benchmark: ``bootstrap`` or ``$SHARDLINE_KAFKA_BOOTSTRAP``; security by name.

    ``security`` is ``plaintext`` (a local broker), ``tls`` or ``msk-iam`` (MSK IAM through
    aws-msk-iam-sasl-signer-python, with the standard AWS configuration).
    """
    from shardline.kafka_config import KafkaClientConfig, security_named

    servers = bootstrap or os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not servers:
        raise ConfigurationError(
            f"--target msk needs the cluster's bootstrap servers: pass --bootstrap HOST:PORT[,HOST:PORT] "
            f"or set {BOOTSTRAP_ENV}"
        )
    chosen = security_named(security, servers, _plaintext_log, "stream-bench --target msk")
    return KafkaTarget(servers, KafkaClientConfig(servers, security=chosen, client_id="stream-bench"))
