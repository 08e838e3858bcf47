"""The ``shardline`` command.

Subcommands are plugged in through the ``shardline.commands`` entry-point group, so the
shared base never imports the packages that build on it (``consume`` and ``replay`` live in
``consumers``).  Each entry point names a :class:`Command`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Any, NoReturn

from shardline.errormap import map_aws_errors, map_kafka_errors
from shardline.errors import (
    ConfigurationError,
    MissingResourceError,
    ServiceError,
    ShardlineError,
    ValidationError,
)
from shardline.extras import MissingExtraError, extra_for_module, run_command
from shardline.interrupts import INTERRUPTED

__all__ = [
    "Command",
    "OneLineArgumentParser",
    "aware_time_argument",
    "main",
    "package_version",
    "parse_aware_time",
    "run_async_command",
    "silence_stdout",
]


class _DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default in ``--help`` unless its help already says it (``(default
    20)``, which read "(default 20) (default: 20.0)") or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default is None:
            return text
        return super()._get_help_string(action)


class OneLineArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the command and where to look.

    argparse's own error prints the whole usage first; a person who mistyped one option
    needs the one line saying which, and ``--help`` for the rest.  Subparsers inherit it, and
    option defaults are shown in ``--help``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Command:
    """One ``shardline`` subcommand: how to configure its parser, and what runs it."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _discover(argv: Sequence[str] | None = None) -> tuple[list[Command], dict[str, str]]:
    """Registered commands, and the reasons why others could not be loaded.

    When ``argv`` names a registered command only that one is loaded, so ``shardline consume``
    never imports another command's modules (the local emulator manager, say).  A command whose
    optional extra is not installed is reported only when it is asked for, so it does not
    clutter every other command's output.
    """
    commands: list[Command] = []
    unavailable: dict[str, str] = {}
    entries = entry_points(group="shardline.commands")
    arguments = sys.argv[1:] if argv is None else argv
    requested = next((arg for arg in arguments if not arg.startswith("-")), None)
    if requested in entries.names:
        entries = entries.select(name=requested)
    for entry in entries:
        try:
            loaded = entry.load()
        except ImportError as exc:  # an optional extra (or the package itself) is not installed
            extra = extra_for_module(exc.name, prefer=entry.name)
            unavailable[entry.name] = str(MissingExtraError(exc.name or "?", extra)) if extra else str(exc)
            continue
        if isinstance(loaded, Command):
            commands.append(loaded)
        else:
            unavailable[entry.name] = f"{entry.value} is not a shardline.cli.Command"
    return sorted(commands, key=lambda command: command.name), unavailable


def package_version(distribution: str = "shardline") -> str:
    """The installed version of ``distribution`` (``unknown`` when run from a bare checkout)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineArgumentParser(prog="shardline", description="Streaming ingestion for Kinesis and MSK.")
    parser.add_argument("--version", action="version", version=f"shardline {package_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    commands, unavailable = _discover(argv)
    for command in commands:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        runners[command.name] = command.run
    for name in sorted(set(unavailable) - set(runners)):
        subparsers.add_parser(name, help=f"(unavailable; `shardline {name}` says why)", add_help=False)
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments:  # a bare `shardline` asks what there is
        parser.print_help()
        return 0
    args, extra = parser.parse_known_args(arguments)
    if args.command in unavailable and args.command not in runners:
        reason = unavailable[args.command]
        print(f"shardline: command {args.command!r} unavailable: {reason}", file=sys.stderr)
        return 2
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # a command's extra shares its name (`shardline local` -> shardline[local])
    try:
        run = runners[args.command]
        return run_command(f"shardline {args.command}", lambda: run(args), prefer=args.command)
    except KeyboardInterrupt:  # before the command installed its own handling: no traceback
        return 130


if __name__ == "__main__":
    # Under `python -m shardline.cli` this file runs as __main__; commands are instances of
    # the importable module's Command, so dispatch through that module.
    from shardline.cli import main as _main

    raise SystemExit(_main())


def parse_aware_time(text: str, what: str) -> datetime:
    """An ISO-8601 time with its zone (``Z`` accepted); ``what`` names the option in the error.

    A time without a zone would be read in the machine's local zone, which differs between a
    laptop and a Batch container: the commands refuse it instead of guessing.
    """
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigurationError(f"{what} needs an ISO-8601 time, got {text!r}") from exc
    if moment.tzinfo is None:
        raise ConfigurationError(f"{what} needs a time zone (e.g. 2024-05-01T00:00:00Z), got {text!r}")
    return moment


def aware_time_argument(text: str) -> datetime:
    """:func:`parse_aware_time` as an argparse ``type``: its error becomes argparse's one line."""
    try:
        return parse_aware_time(text, "the time")
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


EXIT_FAILED = 1
"""Failed at run time (docs/errors.md)."""
EXIT_REFUSED = 2
"""Refused before starting: bad arguments or input, a missing resource (docs/errors.md)."""


def exit_status_for(error: ShardlineError) -> int:
    """The exit status docs/errors.md gives ``error``, for every command.

    Bad arguments (``ConfigurationError``), a missing resource and input refused before any
    network call (a ``ValidationError``) are refusals, 2; anything else, a service's own
    refusal of a request included (``InvalidRequestError``, a ``ServiceError``), is a run-time
    failure, 1.
    """
    if isinstance(error, ConfigurationError | MissingResourceError):
        return EXIT_REFUSED
    if isinstance(error, ValidationError) and not isinstance(error, ServiceError):
        return EXIT_REFUSED
    return EXIT_FAILED


def run_async_command(name: str, main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a command's coroutine; Shardline errors become one line on stderr, never a traceback.

    Refusals exit 2 and other Shardline errors 1 (:func:`exit_status_for`; client-library
    errors are mapped first), and a Ctrl-C that lands before the command installed its own handlers
    exits 130 like the ones after.
    """
    try:
        with map_aws_errors(), map_kafka_errors():
            return asyncio.run(main())
    except KeyboardInterrupt:
        return INTERRUPTED
    except ShardlineError as exc:
        status = exit_status_for(exc)
        if status == EXIT_REFUSED:
            print(f"shardline {name}: {exc}", file=sys.stderr)
        else:
            print(f"shardline {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return status


def silence_stdout() -> None:
    """After EPIPE (``| head`` has what it wanted), point stdout at /dev/null so later writes
    and the interpreter's final flush stay quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
