"""Self-installing local stack: kinesis-mock, moto server, kinesalite, Tansu, InfluxDB on 127.0.0.1.

:func:`start_server` starts one server for the lifetime of its handle (the pytest fixtures use
it); :func:`up` and :func:`down` start detached servers recorded in a state file (the
``shardline local`` command uses them).
"""

from __future__ import annotations

from shardline.local.environment import endpoint_env_var, export_lines, stack_environment
from shardline.local.errors import LocalEmulatorError, PrerequisiteMissingError, ServerStartError
from shardline.local.processes import ServerHandle
from shardline.local.services import ENGINES, start_server
from shardline.local.stack import SERVICES, StackState, down, load_state, up

__all__ = [
    "ENGINES",
    "SERVICES",
    "LocalEmulatorError",
    "PrerequisiteMissingError",
    "ServerHandle",
    "ServerStartError",
    "StackState",
    "down",
    "endpoint_env_var",
    "export_lines",
    "load_state",
    "stack_environment",
    "start_server",
    "up",
]
