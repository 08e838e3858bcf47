"""Launchers for each local server, on free 127.0.0.1 ports.

Each launcher installs what it needs, starts the server process itself and waits for a
real API answer.  If the server exits during start-up (most often because another process
took the port between choosing it and binding it) it is started again on new ports.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shardline.extras import require_module
from shardline.local import installers
from shardline.local.errors import ServerStartError
from shardline.local.probes import (
    DUMMY_ACCESS_KEY_ID,
    DUMMY_REGION,
    DUMMY_SECRET_ACCESS_KEY,
    aws_probe,
    http_ping_probe,
    kafka_probe,
)
from shardline.local.processes import ServerHandle, free_port, launch, wait_ready

__all__ = [
    "ENGINES",
    "TansuS3Storage",
    "start_influxdb",
    "start_kinesalite",
    "start_kinesis_mock",
    "start_moto",
    "start_server",
    "start_tansu",
]

DEFAULT_READY_TIMEOUT_S = 180.0
_START_ATTEMPTS = 3
_NODE_PRELOAD = Path(__file__).with_name("node_preload.js")


@dataclass(frozen=True)
class _LaunchPlan:
    argv: list[str]
    endpoint: str
    probe: Callable[[], object]
    env: Mapping[str, str] = field(default_factory=dict)
    extras: Mapping[str, str] = field(default_factory=dict)


def _start(
    name: str,
    plan: Callable[[Path], _LaunchPlan],
    run_dir: Path,
    *,
    detached: bool,
    ready_timeout: float,
) -> ServerHandle:
    """Start the server ``plan`` describes, again on new ports if it dies during start-up."""
    server_dir = run_dir / name
    server_dir.mkdir(parents=True, exist_ok=True)
    failure: ServerStartError | None = None
    for attempt in range(1, _START_ATTEMPTS + 1):
        launch_plan = plan(server_dir)
        log_path = server_dir / f"{name}.{attempt}.log"
        process = launch(
            name, launch_plan.argv, log_path=log_path, env=launch_plan.env, cwd=server_dir, detached=detached
        )
        handle = ServerHandle(name, launch_plan.endpoint, process, log_path, dict(launch_plan.extras))
        try:
            wait_ready(handle, launch_plan.probe, timeout=ready_timeout)
        except ServerStartError as exc:
            handle.stop()
            # Only a server that exited by itself is tried again: wait_ready stops one that
            # did not answer in time, so its return code cannot tell the two apart.
            if not exc.retriable or attempt == _START_ATTEMPTS:
                raise
            failure = exc
            continue
        except BaseException:
            # Ctrl-C (or SIGTERM, which `shardline local up` turns into one) while waiting: a
            # detached server outlives this process, and no handle of it reaches the caller
            # to stop it, so it would run on unrecorded.
            handle.stop()
            raise
        return handle
    raise ServerStartError(f"{name} could not be started") from failure


def start_kinesis_mock(
    run_dir: Path,
    *,
    detached: bool = False,
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
    announce: installers.Announce | None = None,
) -> ServerHandle:
    """kinesis-mock (npm ``kinesis-local``): the most faithful Kinesis emulator, plain HTTP + TLS."""
    node = installers.find_node()
    package = installers.ensure_npm_package(installers.KINESIS_MOCK, announce=announce)

    def plan(server_dir: Path) -> _LaunchPlan:
        plain, tls = free_port(), free_port()
        endpoint = f"http://127.0.0.1:{plain}"
        env = {
            "KINESIS_MOCK_CERT_PATH": str(package / "server.json"),
            "KINESIS_MOCK_PLAIN_PORT": str(plain),
            "KINESIS_MOCK_TLS_PORT": str(tls),
            "CREATE_STREAM_DURATION": "0ms",
            "DELETE_STREAM_DURATION": "0ms",
            "REGISTER_STREAM_CONSUMER_DURATION": "0ms",
            "DEREGISTER_STREAM_CONSUMER_DURATION": "0ms",
            "AWS_REGION": "us-east-1",
            "LOG_LEVEL": "INFO",
            "SHOULD_PERSIST_DATA": "false",
            # AWS's account quotas (50 shards, 10 on-demand streams) would make a test run or a
            # day of local development fail on streams nobody deleted; the local stack lifts them.
            "SHARD_LIMIT": "100000",
            "ON_DEMAND_STREAM_COUNT_LIMIT": "10000",
        }
        argv = [node, "--require", str(_NODE_PRELOAD), str(package / installers.KINESIS_MOCK.entry)]
        return _LaunchPlan(
            argv, endpoint, aws_probe("kinesis", endpoint), env, {"tls_endpoint": f"https://127.0.0.1:{tls}"}
        )

    return _start("kinesis-mock", plan, run_dir, detached=detached, ready_timeout=ready_timeout)


def start_kinesalite(
    run_dir: Path,
    *,
    detached: bool = False,
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
    announce: installers.Announce | None = None,
) -> ServerHandle:
    """kinesalite: the fastest Kinesis emulator, enforcing request limits; in-memory store."""
    node = installers.find_node()
    package = installers.ensure_npm_package(installers.KINESALITE, announce=announce)

    def plan(server_dir: Path) -> _LaunchPlan:
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        argv = [
            node,
            "--require",
            str(_NODE_PRELOAD),
            str(package / installers.KINESALITE.entry),
            "--port",
            str(port),
            "--shardLimit",
            "100",
            "--createStreamMs",
            "0",
            "--deleteStreamMs",
            "0",
            "--updateStreamMs",
            "0",
        ]
        return _LaunchPlan(argv, endpoint, aws_probe("kinesis", endpoint))

    return _start("kinesalite", plan, run_dir, detached=detached, ready_timeout=ready_timeout)


def start_moto(
    run_dir: Path,
    *,
    detached: bool = False,
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
    announce: installers.Announce | None = None,
) -> ServerHandle:
    """moto in server mode: DynamoDB, Firehose, S3, Timestream, CloudWatch and Kinesis on one port.

    moto comes with the ``local`` extra, so nothing is installed and ``announce`` is not called.
    """
    # a child `python -m moto.server` without them would only say it failed to start
    require_module("moto", "local")
    require_module("flask", "local")

    def plan(server_dir: Path) -> _LaunchPlan:
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        return _LaunchPlan(argv, endpoint, aws_probe("dynamodb", endpoint))

    return _start("moto", plan, run_dir, detached=detached, ready_timeout=ready_timeout)


@dataclass(frozen=True)
class TansuS3Storage:
    """An S3 bucket (on a local S3 API, such as moto's) that holds a Tansu broker's log.

    Unlike ``memory://`` it outlives the broker: a broker started again on the same bucket
    still has its topics, messages and idempotent producers' sequence numbers, so a broker
    restart can be tested.  The bucket must exist.  Only local endpoints are meant: the
    broker gets dummy credentials.
    """

    endpoint: str
    bucket: str

    def engine_url(self) -> str:
        return f"s3://{self.bucket}/"

    def broker_env(self) -> dict[str, str]:
        """The variables Tansu's S3 client reads (object_store's ``AWS_*`` settings)."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_DEFAULT_REGION": DUMMY_REGION,
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
        }


def start_tansu(
    run_dir: Path,
    *,
    detached: bool = False,
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
    storage: TansuS3Storage | None = None,
    port: int | None = None,
    name: str = "tansu",
    announce: installers.Announce | None = None,
) -> ServerHandle:
    """Tansu, an Apache-Kafka-protocol broker, with in-memory storage unless ``storage`` is given.

    ``port`` pins the listener (a broker restarted on its old port and ``storage`` is the
    same broker to its clients); without it a free port is chosen on every attempt.
    """
    require_module("confluent_kafka", "local")  # the readiness probe is a Kafka client
    binary = installers.ensure_tansu(announce=announce)

    def plan(server_dir: Path) -> _LaunchPlan:
        bootstrap = f"127.0.0.1:{port if port is not None else free_port()}"
        argv = [
            str(binary),
            "broker",
            "--cluster-id",
            "shardline-local",
            "--listener-url",
            f"tcp://{bootstrap}",
            "--advertised-listener-url",
            f"tcp://{bootstrap}",
            "--storage-engine",
            storage.engine_url() if storage is not None else "memory://tansu/",
        ]
        env = storage.broker_env() if storage is not None else {}
        return _LaunchPlan(argv, bootstrap, kafka_probe(bootstrap), env)

    return _start(name, plan, run_dir, detached=detached, ready_timeout=ready_timeout)


_INFLUXDB_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = {meta}

[data]
  dir = {data}
  wal-dir = {wal}
  query-log-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false

[monitor]
  store-enabled = false
"""


def _toml_string(text: str) -> str:
    """``text`` as a TOML basic string.

    The data directories are under the cache directory, whose path is the user's: with a
    double quote or a backslash in it, pasted between quotes, influxd could not parse its
    config and exited at every start.  JSON's escapes are TOML's, but for DEL.
    """
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def start_influxdb(
    run_dir: Path,
    *,
    detached: bool = False,
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
    announce: installers.Announce | None = None,
) -> ServerHandle:
    """InfluxDB 1.x (v1 HTTP API, line protocol), every listener on a free loopback port.

    ``influxd`` is never installed (it must be on the machine), so ``announce`` is not called.
    """
    influxd = installers.find_influxd()

    def plan(server_dir: Path) -> _LaunchPlan:
        http_port, rpc_port = free_port(), free_port()
        config = server_dir / "influxdb.conf"
        dirs = {name: _toml_string(str(server_dir / name)) for name in ("meta", "data", "wal")}
        config.write_text(_INFLUXDB_CONFIG.format(rpc_port=rpc_port, http_port=http_port, **dirs))
        url = f"http://127.0.0.1:{http_port}"
        return _LaunchPlan([influxd, "-config", str(config)], url, http_ping_probe(url))

    return _start("influxdb", plan, run_dir, detached=detached, ready_timeout=ready_timeout)


ENGINES: Mapping[str, Callable[..., ServerHandle]] = {
    "kinesis-mock": start_kinesis_mock,
    "kinesalite": start_kinesalite,
    "moto": start_moto,
    "tansu": start_tansu,
    "influxdb": start_influxdb,
}


def start_server(
    engine: str,
    run_dir: Path,
    *,
    detached: bool = False,
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
    announce: installers.Announce | None = None,
) -> ServerHandle:
    """Start one server by engine name (a key of :data:`ENGINES`).

    ``announce`` hears a line for each first-use install the server needs (none when cached).
    """
    try:
        launcher = ENGINES[engine]
    except KeyError:
        raise ValueError(f"unknown local server {engine!r}; choose from {', '.join(ENGINES)}") from None
    return launcher(run_dir, detached=detached, ready_timeout=ready_timeout, announce=announce)
