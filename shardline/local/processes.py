"""Start, watch and stop local server processes.

A handle always holds the server process itself (never a wrapper shell), so stopping it
by pid stops the server.  Readiness is a real API call retried until a deadline; if the
server dies first, the error carries the tail of its log instead of a bare timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shardline.local.errors import LocalEmulatorError, ServerStartError

__all__ = [
    "ServerHandle",
    "free_port",
    "is_running",
    "launch",
    "listens_on",
    "log_tail",
    "start_time",
    "stop_pid",
    "wait_ready",
]

# The only variables a server inherits from the caller; everything else (credentials, profiles,
# container and web-identity credential endpoints, tokens of any kind) stays behind.
_INHERITED_ENV = frozenset(
    {"PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SHARDLINE_BIND_HOST"}
)
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, eq=False)
class ServerHandle:
    """A running local server: what it is, where it answers, and its own process."""

    name: str
    endpoint: str
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path
    extras: Mapping[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def argv(self) -> list[str]:
        args = self.process.args
        if isinstance(args, str | bytes | os.PathLike):
            return [os.fsdecode(args)]
        return [os.fsdecode(arg) for arg in args]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within ``timeout`` seconds."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


def _child_env(extra: Mapping[str, str], home: Path | None = None) -> dict[str, str]:
    """The environment for a server: an allow-list of the caller's variables, its own HOME, ``extra``.

    No credentials, profile or credential endpoint reaches an emulator, and none of them
    reads or writes the caller's home directory (``~/.aws``, ``~/.npmrc``...).
    """
    env = {key: value for key, value in os.environ.items() if key in _INHERITED_ENV}
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home)
    env.update(extra)
    return env


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def launch(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    detached: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session with output in ``log_path``.

    ``detached`` servers outlive this process (``shardline local up``); attached ones get
    SIGTERM when this process dies, so a killed test run leaves no server behind.  The server's
    HOME is ``home`` under its working directory (or its log directory).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    home = (cwd or log_path.parent) / "home"
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(env or {}, home),
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
            preexec_fn=None if detached else _die_with_parent,
        )


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a server log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(tail) if tail else "(empty log)"


def wait_ready(
    handle: ServerHandle, probe: Callable[[], object], *, timeout: float, interval: float = 0.2
) -> None:
    """Call ``probe`` (a real API call) until it succeeds, the server dies, or time runs out.

    The :class:`ServerStartError` of a server that exited by itself is ``retriable`` (started
    again on new ports, it may come up); one that did not answer in time is not (it was
    given the whole timeout already).
    """
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while True:
        if handle.process.poll() is not None:
            # retriable: most often another process took its port; new ports may do
            raise ServerStartError(
                f"{handle.name} exited with code {handle.process.returncode} before it was ready; "
                f"log {handle.log_path}:\n{log_tail(handle.log_path)}",
                retriable=True,
            )
        try:
            probe()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if listens_on(handle.pid, _endpoint_port(handle.endpoint)) is not False:
                return
            # Another process holds the port (taken between choosing and binding it): its
            # answer says nothing about this server, which is about to fail to bind and exit.
            last_error = f"the port answered, but it is held by another process than {handle.name}"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            handle.stop()
            raise ServerStartError(
                f"{handle.name} did not answer at {handle.endpoint} within {timeout:.0f}s "
                f"(last error: {last_error}); log {handle.log_path}:\n{log_tail(handle.log_path)}"
            )
        # Waiting on the process doubles as the pause between probes and notices an early exit.
        with contextlib.suppress(subprocess.TimeoutExpired):
            handle.process.wait(timeout=min(interval, remaining))


def _endpoint_port(endpoint: str) -> int | None:
    """The TCP port of ``http://host:port`` or ``host:port`` (a Kafka bootstrap)."""
    try:
        return urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").port
    except ValueError:
        return None


def _listening_socket_inodes(port: int) -> set[str] | None:
    """Inodes of the TCP sockets listening on ``port`` (any address); ``None`` without /proc."""
    inodes: set[str] = set()
    readable = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for row in rows:
            fields = row.split()
            # sl local_address rem_address st ... inode; st 0A is LISTEN
            if len(fields) >= 10 and fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(fields[9])
    return inodes if readable else None


def _socket_inodes(pid: int) -> set[str] | None:
    """Inodes of the sockets ``pid`` holds open; ``None`` if its descriptors cannot be read."""
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    inodes: set[str] = set()
    for descriptor in descriptors:
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if target.startswith("socket:[") and target.endswith("]"):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def listens_on(pid: int, port: int | None) -> bool | None:
    """Whether ``pid`` itself holds a socket listening on TCP ``port``; ``None``: cannot tell.

    A readiness probe only shows that *something* answers on the port.  When another
    process took the port between :func:`free_port` and the server's bind (another test
    session's emulator, say), that something is the wrong server, and a handle built on its
    answer would send this run's requests there.  Linux only (``/proc``); elsewhere ``None``.
    """
    if port is None:
        return None
    listening = _listening_socket_inodes(port)
    held = _socket_inodes(pid)
    if listening is None or held is None:
        return None
    return not listening.isdisjoint(held)


def _proc_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


def _proc_stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name: field 3 (state) onwards."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def _is_zombie(pid: int) -> bool:
    fields = _proc_stat_fields(pid)
    return fields is None or fields[:1] == ["Z"]


def start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; ``None`` where /proc cannot say.

    Together with the pid it names one process for the machine's uptime: a later process
    that reuses the pid, even one running the very same command line (two kinesis-mock
    servers differ only in their environment), has another start time.
    """
    fields = _proc_stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    try:
        return int(fields[19])  # field 22, starttime
    except ValueError:
        return None


def is_running(pid: int, argv: Sequence[str], started: int | None = None) -> bool:
    """Whether ``pid`` is alive and still the recorded process (pids are reused after exit).

    It must run ``argv`` and, when ``started`` (its :func:`start_time`) was recorded, have
    started then.
    """
    if _is_zombie(pid):
        return False
    if started is not None and start_time(pid) != started:
        return False
    return _proc_cmdline(pid) == list(argv)


def _wait_gone(pid: int, argv: Sequence[str], started: int | None, timeout: float) -> bool:
    """Wait until ``pid`` exits; a pidfd reports the exit of a process we did not start."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return not is_running(pid, argv, started)
    try:
        deadline = time.monotonic() + timeout
        while is_running(pid, argv, started):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            select.select([pidfd], [], [], remaining)
        return True
    finally:
        os.close(pidfd)


def stop_pid(pid: int, argv: Sequence[str], *, timeout: float = 10.0, started: int | None = None) -> bool:
    """Stop a recorded server by pid, only if that pid is still the recorded process
    (:func:`is_running`: the same command and, when recorded, the same start time).

    SIGTERM first, SIGKILL after ``timeout`` seconds.  Returns whether a process was stopped.
    """
    if not is_running(pid, argv, started):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    if _wait_gone(pid, argv, started, timeout):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, argv, started, timeout):
        raise LocalEmulatorError(f"process {pid} did not exit after SIGKILL")
    return True
