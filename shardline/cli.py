"""The ``shardline`` command.

Subcommands are plugged in through the ``shardline.commands`` entry-point group, so the
shared base never imports the packages that build on it (``consume`` and ``replay`` live in
``consumers``).  Each entry point names a :class:`Command`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

__all__ = ["Command", "main"]


@dataclass(frozen=True)
class Command:
    """One ``shardline`` subcommand: how to configure its parser, and what runs it."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _discover() -> list[Command]:
    commands: list[Command] = []
    for entry in entry_points(group="shardline.commands"):
        try:
            loaded = entry.load()
        except ImportError as exc:  # an optional extra is not installed
            print(f"shardline: command {entry.name!r} unavailable: {exc}", file=sys.stderr)
            continue
        if isinstance(loaded, Command):
            commands.append(loaded)
    return sorted(commands, key=lambda command: command.name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shardline", description="Streaming ingestion for Kinesis and MSK.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    for command in _discover():
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        runners[command.name] = command.run
    args = parser.parse_args(argv)
    return runners[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
