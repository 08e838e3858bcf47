"""Shared fixtures: dummy AWS settings for every test, and real local servers on demand.

The run's watchdog (``tests/hard_stop.py``) is registered here too.

Servers are session-scoped and started lazily, only when a test asks for one, by the same
code as ``shardline local up``; each runs once per pytest run on a free 127.0.0.1 port and
is stopped by its handle at the end of the session.  Tests create uniquely named streams,
tables and topics, so they share a server without interfering.
"""

from __future__ import annotations

import contextlib
import logging
import os
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from shardline.local.errors import PrerequisiteMissingError
from shardline.local.processes import ServerHandle
from shardline.local.services import start_server
from tests import hard_stop
from tests.hard_stop import pytest_configure, pytest_runtest_protocol

__all__ = ["pytest_configure", "pytest_runtest_protocol"]  # the run's watchdog (tests/hard_stop.py)

_DUMMY_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
# Removed so a developer's own AWS setup (or exports from `shardline local up`) never
# reaches a real account or redirects a test to another endpoint.
_REMOVED_AWS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
)


def in_ci() -> bool:
    """CI must fail on a missing prerequisite instead of skipping the tests that need it."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """Each test leaves the root logger's handlers and levels as it found them.

    A CLI run in-process (``setup_logging``) points the root logger at that test's captured
    stderr; left in place after the test closed the stream, every later log record in the
    process printed a ``--- Logging error ---`` traceback, which a test reading stderr or the
    captured records could take for its own.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quieted = {name: logging.getLogger(name).level for name in _QUIETED_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in quieted.items():
        logging.getLogger(name).setLevel(was)


@pytest.fixture(autouse=True)
def lambda_handlers_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Lambda handler a test makes is closed after it.

    A handler keeps its sink's connections open for the next invocation, as a warm Lambda
    does; left open, the sink's HTTP session was collected during some later test, and its
    "Unclosed client session" error landed in that test's captured logs.
    """
    from consumers.adapters import lambda_handler

    made: list[lambda_handler._Handler] = []
    init = lambda_handler._Handler.__init__

    def noting(self: lambda_handler._Handler, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(lambda_handler._Handler, "__init__", noting)
    yield
    for handler in made:
        with contextlib.suppress(Exception):  # a test's own sink may refuse to close
            handler.close(timeout=5)


_QUIETED_LOGGERS = ("botocore", "aiobotocore", "urllib3", "s3transfer")
"""The loggers ``setup_logging`` sets a level on."""


@pytest.fixture(scope="session", autouse=True)
def aws_test_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Dummy credentials and region for the whole run; no profile, no shared config files."""
    patch = pytest.MonkeyPatch()
    for name, value in _DUMMY_AWS.items():
        patch.setenv(name, value)
    for name in [*_REMOVED_AWS, *(key for key in os.environ if key.startswith("AWS_ENDPOINT_URL_"))]:
        patch.delenv(name, raising=False)
    empty = tmp_path_factory.mktemp("aws-config") / "none"
    patch.setenv("AWS_CONFIG_FILE", str(empty))
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def local_stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this run's servers keep their logs and data."""
    return tmp_path_factory.mktemp("local-stack")


def _serve(engine: str, run_dir: Path, *, optional: bool = False) -> Iterator[ServerHandle]:
    try:
        handle = start_server(engine, run_dir)
    except PrerequisiteMissingError as exc:
        if optional and not in_ci():
            pytest.skip(str(exc))
        raise
    hard_stop.servers.append(handle)
    try:
        yield handle
    finally:
        hard_stop.servers.remove(handle)
        handle.stop(timeout=5.0)


@pytest.fixture(scope="session")
def kinesis_mock_server(local_stack_dir: Path) -> Iterator[ServerHandle]:
    yield from _serve("kinesis-mock", local_stack_dir)


@pytest.fixture(scope="session")
def kinesis_endpoint(kinesis_mock_server: ServerHandle) -> str:
    """kinesis-mock's plain-HTTP URL (the most faithful Kinesis emulator)."""
    return kinesis_mock_server.endpoint


@pytest.fixture(scope="session")
def kinesis_tls_endpoint(kinesis_mock_server: ServerHandle) -> str:
    """kinesis-mock's HTTPS URL (self-signed certificate; EFO over HTTP/2 needs TLS)."""
    return kinesis_mock_server.extras["tls_endpoint"]


@pytest.fixture(scope="session")
def moto_server(local_stack_dir: Path) -> Iterator[ServerHandle]:
    yield from _serve("moto", local_stack_dir)


@pytest.fixture(scope="session")
def moto_endpoint(moto_server: ServerHandle) -> str:
    """moto server's URL: DynamoDB, Firehose, S3, Timestream, CloudWatch and Kinesis."""
    return moto_server.endpoint


@pytest.fixture
def own_moto_endpoint(tmp_path: Path) -> Iterator[str]:
    """A moto server of this test's own, stopped after it: for resources that would disturb the
    shared one (a Lambda function makes moto's state dump, /moto-api/data.json, fail with
    HTTP 500 for the rest of the server's life, and the sink tests read Timestream through it)."""
    for handle in _serve("moto", tmp_path):
        yield handle.endpoint


@pytest.fixture
def moto_reset(moto_endpoint: str) -> str:
    """moto's URL after clearing every backend (POST /moto-api/reset); for tests needing a clean slate."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    return moto_endpoint


@pytest.fixture(scope="session")
def kinesalite_server(local_stack_dir: Path) -> Iterator[ServerHandle]:
    yield from _serve("kinesalite", local_stack_dir)


@pytest.fixture(scope="session")
def kinesalite_endpoint(kinesalite_server: ServerHandle) -> str:
    """kinesalite's URL (fastest Kinesis emulator; no fan-out, no on-demand)."""
    return kinesalite_server.endpoint


@pytest.fixture(scope="session")
def tansu_server(local_stack_dir: Path) -> Iterator[ServerHandle]:
    yield from _serve("tansu", local_stack_dir)


@pytest.fixture(scope="session")
def kafka_bootstrap(tansu_server: ServerHandle) -> str:
    """``127.0.0.1:PORT`` of the Tansu Kafka-protocol broker (memory storage)."""
    return tansu_server.endpoint


@pytest.fixture(scope="session")
def influxdb_server(local_stack_dir: Path) -> Iterator[ServerHandle]:
    yield from _serve("influxdb", local_stack_dir, optional=True)


@pytest.fixture(scope="session")
def influxdb_url(influxdb_server: ServerHandle) -> str:
    """InfluxDB 1.x's HTTP URL (skipped outside CI when influxd is not installed)."""
    return influxdb_server.endpoint


@pytest.fixture
async def s3_and_firehose(moto_endpoint: str) -> AsyncIterator[tuple[Any, Any]]:
    """S3 and Firehose clients of the project's moto server."""
    session = get_session()
    async with (
        session.create_client("s3", endpoint_url=moto_endpoint) as s3,
        session.create_client("firehose", endpoint_url=moto_endpoint) as firehose,
    ):
        yield s3, firehose
