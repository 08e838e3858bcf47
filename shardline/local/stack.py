"""``shardline local``'s stack: start servers detached, record them, report and stop them.

The state file records, per server, the pid, the exact command line it runs and when it
started, so ``down`` signals exactly the processes ``up`` started, and never a process that
reused a pid (not even one running the same command: another kinesis-mock, say).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shardline.local.environment import stack_environment
from shardline.local.errors import LocalEmulatorError, PrerequisiteMissingError
from shardline.local.installers import Announce, find_influxd, install_lock
from shardline.local.paths import is_run_dir, new_run_dir, state_file
from shardline.local.processes import ServerHandle, is_running, start_time, stop_pid
from shardline.local.services import DEFAULT_READY_TIMEOUT_S, start_server

__all__ = [
    "KINESIS_ENGINES",
    "SERVICES",
    "RecordedServer",
    "StackState",
    "default_services",
    "down",
    "load_state",
    "parse_services",
    "up",
]

SERVICES = ("kinesis", "aws", "kafka", "influxdb")
KINESIS_ENGINES = ("kinesis-mock", "moto", "kinesalite")
_ENGINE_FOR_SERVICE = {"aws": "moto", "kafka": "tansu", "influxdb": "influxdb"}


@dataclass(frozen=True)
class RecordedServer:
    """One started server as written to the state file."""

    name: str
    services: tuple[str, ...]
    endpoint: str
    pid: int
    argv: tuple[str, ...]
    log_path: str
    start_time: int | None = None
    """:func:`shardline.local.processes.start_time` of the process; ``None`` in older records."""

    def alive(self) -> bool:
        return is_running(self.pid, self.argv, self.start_time)

    @classmethod
    def from_handle(cls, handle: ServerHandle, services: Sequence[str]) -> RecordedServer:
        return cls(
            handle.name,
            tuple(services),
            handle.endpoint,
            handle.pid,
            tuple(handle.argv),
            str(handle.log_path),
            start_time(handle.pid),
        )


@dataclass(frozen=True)
class StackState:
    """What ``up`` started: its servers, their logs' directory and the environment to export."""

    run_dir: str
    servers: tuple[RecordedServer, ...]
    environment: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> StackState:
        """Parse a state file, checking every field's type: it is plain JSON anyone can edit.

        Raises :class:`ValueError` for anything ``up`` would not have written.  The environment's
        names are printed unquoted by ``shardline local env``, whose output is ``eval``-ed: a name
        that is not a shell identifier ran as a command.
        """
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("servers"), list):
            raise ValueError("not a stack record")
        servers = tuple(_recorded_server(entry) for entry in raw["servers"])
        environment = raw.get("environment", {})
        if not isinstance(environment, dict) or not all(
            isinstance(key, str) and _SHELL_NAME.fullmatch(key) and isinstance(value, str)
            for key, value in environment.items()
        ):
            raise ValueError("environment must map shell variable names to strings")
        return cls(run_dir=_string(raw, "run_dir"), servers=servers, environment=dict(environment))


_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _string(entry: dict[str, object], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _strings(entry: dict[str, object], key: str) -> tuple[str, ...]:
    value = entry.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key} must be a list of strings")
    return tuple(value)


def _recorded_server(entry: object) -> RecordedServer:
    """One server of a state file; a pid must be a positive integer (``kill`` treats 0 and
    negative pids as process groups)."""
    if not isinstance(entry, dict):
        raise ValueError("a server must be an object")
    pid, started = entry.get("pid"), entry.get("start_time")
    if type(pid) is not int or pid <= 0:
        raise ValueError("pid must be a positive integer")
    if started is not None and type(started) is not int:
        raise ValueError("start_time must be an integer")
    return RecordedServer(
        name=_string(entry, "name"),
        services=_strings(entry, "services"),
        endpoint=_string(entry, "endpoint"),
        pid=pid,
        argv=_strings(entry, "argv"),
        log_path=_string(entry, "log_path"),
        start_time=started,
    )


def default_services() -> tuple[str, ...]:
    """kinesis, aws and kafka; influxdb too where ``influxd`` is installed."""
    try:
        find_influxd()
    except PrerequisiteMissingError:
        return ("kinesis", "aws", "kafka")
    return SERVICES


def parse_services(text: str | None) -> tuple[str, ...]:
    """``"kinesis,aws"`` -> ``("kinesis", "aws")``; unknown names are a typed error."""
    if text is None:
        return default_services()
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in SERVICES]
    if unknown or not names:
        raise LocalEmulatorError(f"unknown services {unknown or [text]}; choose from {','.join(SERVICES)}")
    return names


@contextlib.contextmanager
def _state_lock() -> Iterator[None]:
    with install_lock("local-stack-state"):
        yield


def load_state(path: Path | None = None) -> StackState | None:
    """The recorded stack, or ``None`` when nothing was started (or the record is unreadable)."""
    path = path or state_file()
    try:
        return StackState.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LocalEmulatorError(
            f"cannot read the local stack state {path} ({exc.strerror or type(exc).__name__})"
        ) from exc
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise LocalEmulatorError(f"unreadable local stack state {path}: {exc}; remove it") from exc


def _write_state(path: Path, state: StackState) -> None:
    """Record ``state`` atomically (a temporary file renamed over ``path``)."""
    temporary = path.with_suffix(".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(state.to_json())
        temporary.replace(path)
    except OSError as exc:
        raise LocalEmulatorError(
            f"cannot write the local stack state {path} ({exc.strerror or type(exc).__name__}); "
            f"the servers just started were stopped again"
        ) from exc


def _plan(services: Sequence[str], kinesis_engine: str) -> dict[str, list[str]]:
    """Engine -> the services it provides (moto serves both Kinesis and the AWS services)."""
    if kinesis_engine not in KINESIS_ENGINES:
        raise LocalEmulatorError(f"unknown kinesis engine {kinesis_engine!r}; choose from {KINESIS_ENGINES}")
    engines: dict[str, list[str]] = {}
    for service in services:
        engine = kinesis_engine if service == "kinesis" else _ENGINE_FOR_SERVICE[service]
        engines.setdefault(engine, []).append(service)
    return engines


def _starting_line(services: Sequence[str], kinesis_engine: str) -> str:
    """What ``up`` is about to start; the Kinesis engine only when Kinesis is among them."""
    engine = f" (kinesis engine: {kinesis_engine})" if "kinesis" in services else ""
    return f"starting {', '.join(services)}{engine}..."


def up(
    services: Sequence[str],
    *,
    kinesis_engine: str = "kinesis-mock",
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S,
    state_path: Path | None = None,
    announce: Announce | None = None,
) -> StackState:
    """Start ``services`` detached, wait until each answers, and record them.

    Refuses to start a second stack while a recorded one still runs.  If any server fails,
    those already started are stopped again, so a failed ``up`` leaves nothing behind.
    ``announce`` hears the progress lines: "starting ...", once that check passed and before the
    first server (or its first-use install) starts (printed before it, it was followed by
    "already running"), then one line per first-use install actually performed, so a long
    download is not a long silence.
    """
    path = state_path or state_file()
    with _state_lock():
        previous = load_state(path)
        if previous is not None and any(server.alive() for server in previous.servers):
            raise LocalEmulatorError(
                "a local stack is already running: see `shardline local status`, "
                "or stop it with `shardline local down`"
            )
        plan = _plan(services, kinesis_engine)
        if announce is not None:
            announce(_starting_line(services, kinesis_engine))
        run_dir = new_run_dir()
        started: list[tuple[ServerHandle, list[str]]] = []
        try:
            for engine, provided in plan.items():
                handle = start_server(
                    engine, run_dir, detached=True, ready_timeout=ready_timeout, announce=announce
                )
                started.append((handle, provided))
            endpoints = {service: handle.endpoint for handle, provided in started for service in provided}
            state = StackState(
                run_dir=str(run_dir),
                servers=tuple(RecordedServer.from_handle(handle, provided) for handle, provided in started),
                environment=stack_environment(
                    kinesis=endpoints.get("kinesis"),
                    aws=endpoints.get("aws"),
                    kafka=endpoints.get("kafka"),
                    influxdb=endpoints.get("influxdb"),
                ),
            )
            # Until the record is written, nothing but this process knows these detached
            # servers: if writing it fails they are stopped, or no `down` could find them.
            _write_state(path, state)
        except BaseException:
            for handle, _ in started:
                handle.stop()
            raise
        for handle, _ in started:
            # Detached servers outlive this process; mark them handled so no "still running"
            # warning is raised when their Popen objects are collected.
            handle.process.returncode = 0
        return state


def down(*, state_path: Path | None = None, timeout: float = 10.0) -> list[RecordedServer]:
    """Stop exactly the recorded servers that still run their recorded command; forget the stack."""
    path = state_path or state_file()
    with _state_lock():
        state = load_state(path)
        if state is None:
            return []
        stopped = [
            server
            for server in state.servers
            if stop_pid(server.pid, server.argv, timeout=timeout, started=server.start_time)
        ]
        path.unlink(missing_ok=True)
        if is_run_dir(Path(state.run_dir)):
            shutil.rmtree(state.run_dir, ignore_errors=True)
        return stopped
