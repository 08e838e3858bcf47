"""The shell environment that points standard AWS and Kafka clients at the local stack.

Endpoint variables follow botocore's own naming (``AWS_ENDPOINT_URL_<SERVICE ID>``, the
service id upper-cased with spaces and hyphens as underscores), so any AWS SDK that honours
the standard configuration talks to the emulators without code changes.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping

import botocore.session

from shardline.local.probes import DUMMY_ACCESS_KEY_ID, DUMMY_REGION, DUMMY_SECRET_ACCESS_KEY

__all__ = [
    "INFLUXDB_URL_ENV",
    "KAFKA_BOOTSTRAP_ENV",
    "MOTO_SERVICES",
    "endpoint_env_var",
    "export_lines",
    "stack_environment",
]

KAFKA_BOOTSTRAP_ENV = "SHARDLINE_KAFKA_BOOTSTRAP"
INFLUXDB_URL_ENV = "SHARDLINE_INFLUXDB_URL"
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MOTO_SERVICES = ("dynamodb", "firehose", "s3", "timestream-write", "timestream-query", "cloudwatch")
"""Services served by moto server for the ``aws`` part of the stack."""


def endpoint_env_var(service_name: str) -> str:
    """botocore's service-specific endpoint variable, e.g. ``timestream-write`` ->
    ``AWS_ENDPOINT_URL_TIMESTREAM_WRITE``."""
    model = botocore.session.get_session().get_service_model(service_name)
    service_id = str(model.service_id)
    return "AWS_ENDPOINT_URL_" + service_id.replace(" ", "_").replace("-", "_").upper()


def stack_environment(
    *,
    kinesis: str | None = None,
    aws: str | None = None,
    kafka: str | None = None,
    influxdb: str | None = None,
) -> dict[str, str]:
    """Variables for the given endpoints, plus dummy credentials and region."""
    env: dict[str, str] = {}
    if kinesis:
        env[endpoint_env_var("kinesis")] = kinesis
    if aws:
        for service in MOTO_SERVICES:
            env[endpoint_env_var(service)] = aws
    if kafka:
        env[KAFKA_BOOTSTRAP_ENV] = kafka
    if influxdb:
        env[INFLUXDB_URL_ENV] = influxdb
    env["AWS_ACCESS_KEY_ID"] = DUMMY_ACCESS_KEY_ID
    env["AWS_SECRET_ACCESS_KEY"] = DUMMY_SECRET_ACCESS_KEY
    env["AWS_REGION"] = DUMMY_REGION
    env["AWS_DEFAULT_REGION"] = DUMMY_REGION
    return env


def export_lines(env: Mapping[str, str], *, unset: Iterable[str] = ("AWS_PROFILE",)) -> list[str]:
    """``export`` lines a POSIX shell can ``eval``; also unsets a profile that would win.

    Values are quoted; names cannot be, so one that is not a shell identifier is refused
    (``ValueError``) rather than printed for the shell to run.
    """
    bad = [name for name in (*unset, *env) if not _SHELL_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"not shell variable names: {bad!r}")
    lines = [f"unset {name}" for name in unset]
    lines.extend(f"export {name}={shlex.quote(value)}" for name, value in env.items())
    return lines
