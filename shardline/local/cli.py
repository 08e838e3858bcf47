"""``shardline local up|status|env|down``: the local stack from the shell.

``up`` prints ``export`` lines on stdout (progress goes to stderr), so
``eval "$(shardline local up)"`` points the current shell at the stack; ``env`` prints the
same lines again for another terminal (``eval "$(shardline local env)"``).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from shardline.cli import Command
from shardline.local.environment import export_lines
from shardline.local.errors import LocalEmulatorError
from shardline.local.stack import KINESIS_ENGINES, SERVICES, down, load_state, parse_services, up

__all__ = ["command"]


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("up", help="install on demand and start the local servers in the background")
    start.add_argument(
        "--services",
        help=f"comma-separated subset of {','.join(SERVICES)} "
        "(default: all but influxdb, plus influxdb where influxd is installed)",
    )
    start.add_argument(
        "--kinesis-engine",
        choices=KINESIS_ENGINES,
        default="kinesis-mock",
        help="which emulator serves Kinesis (default: kinesis-mock)",
    )
    start.add_argument("--env-file", type=Path, help="also write the export lines to this file")
    actions.add_parser("status", help="show the recorded servers, whether they run, and their endpoints")
    actions.add_parser("env", help="print the export lines of the running stack again (for another shell)")
    actions.add_parser("down", help="stop exactly the servers `up` started and forget them")


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`KeyboardInterrupt` while this block runs, as Ctrl-C does.

    ``up`` starts servers detached, in sessions of their own, so they outlive it: killed by a
    signal's default action (a CI job's timeout, a closed terminal) halfway through, it left
    the servers it had started running with no record for ``down`` to find.  As an exception,
    the signal lets ``up`` stop them first.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    caught = [sig for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if sig is not None]
    previous = {sig: signal.signal(sig, interrupt) for sig in caught}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _up(args: argparse.Namespace) -> int:
    services = parse_services(args.services)

    def announce(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    with _terminate_as_interrupt():
        state = up(services, kinesis_engine=args.kinesis_engine, announce=announce)
    for server in state.servers:
        print(f"  {server.name:<13} {server.endpoint}  pid {server.pid}", file=sys.stderr)
    lines = export_lines(state.environment)
    # stdout first: the stack runs and is recorded whatever happens to the env file, and
    # `eval "$(shardline local up --env-file ...)"` still gets its exports
    print("\n".join(lines), flush=True)
    if args.env_file is not None:
        try:
            args.env_file.write_text("\n".join(lines) + "\n")
        except OSError as exc:
            print(
                f"shardline local up: cannot write the environment to {args.env_file} "
                f"({exc.strerror or type(exc).__name__}); the stack is running: "
                "`shardline local env` prints it, `shardline local down` stops it",
                file=sys.stderr,
            )
            return 1
        print(f"environment written to {args.env_file}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    state = load_state()
    if state is None:
        print("no local stack is recorded (start one with `shardline local up`)")
        return 1
    all_alive = True
    for server in state.servers:
        alive = server.alive()
        all_alive = all_alive and alive
        print(
            f"{server.name:<13} {'running' if alive else 'STOPPED':<8} {server.endpoint:<28} "
            f"pid {server.pid}  ({','.join(server.services)})"
        )
    print(f"logs: {state.run_dir}")
    return 0 if all_alive else 1


def _env(args: argparse.Namespace) -> int:
    state = load_state()
    if state is None:
        print("shardline local env: no local stack is recorded (start one with `shardline local up`)",
              file=sys.stderr)  # fmt: skip
        return 1
    stopped = [server.name for server in state.servers if not server.alive()]
    if stopped:
        names = ", ".join(stopped)
        warning = f"warning: not running: {names} (see `shardline local status`)"
        print(f"shardline local env: {warning}", file=sys.stderr)
    print("\n".join(export_lines(state.environment)))
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = down()
    for server in stopped:
        print(f"stopped {server.name} (pid {server.pid})")
    if not stopped:
        print("no running local stack servers were recorded")
    return 0


def _run(args: argparse.Namespace) -> int:
    handlers = {"up": _up, "status": _status, "env": _env, "down": _down}
    try:
        return handlers[args.action](args)
    except LocalEmulatorError as exc:
        print(f"shardline local {args.action}: {exc}", file=sys.stderr)
        return 2


command = Command(
    name="local",
    help="run a local AWS/Kafka stack (kinesis-mock, moto, Tansu, InfluxDB) on 127.0.0.1",
    configure=_configure,
    run=_run,
)
