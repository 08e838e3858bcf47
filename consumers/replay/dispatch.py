"""``shardline replay``: one process (``replay SOURCE ...``) or a planned job (``plan|run|status``).

``shardline replay SOURCE --name ... --sink ...`` runs a whole replay in this process, as it
always did (:mod:`consumers.replay.cli`).  ``shardline replay plan|run|status ...`` works
with a manifest of slices that run anywhere (:mod:`consumers.replay.jobs_cli`).  The first
word after ``replay`` decides: the replay parser hands an argument list that starts with
one of those actions to the action's own parser, so neither form's options leak into the
other's.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from consumers.replay.cli import command as single_process
from consumers.replay.jobs_cli import ACTIONS, build_parser, main
from shardline.cli import Command, OneLineArgumentParser

__all__ = ["command"]

_ACTION = "replay_action"


class _ActionAwareParser(OneLineArgumentParser):
    """The replay parser; an argument list starting with plan/run/status goes to that action's parser."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = list(args) if args is not None else []
        if words and words[0] in ACTIONS:
            action = build_parser(self.prog, words[0])
            parsed = action.parse_args(words[1:], namespace)
            setattr(parsed, _ACTION, words[0])
            return parsed, []
        return super().parse_known_args(args, namespace)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.__class__ = _ActionAwareParser
    parser.epilog = (
        "Planned jobs that run anywhere: `shardline replay plan|run|status --help` (see docs/replay.md)."
    )
    single_process.configure(parser)


def _run(args: argparse.Namespace) -> int:
    action: Any = getattr(args, _ACTION, None)
    if action in ACTIONS:
        return main(action, args)
    return single_process.run(args)


command = Command(
    name="replay",
    help="Replay a stream range or backfill an archive into a sink (or plan|run|status a sliced job).",
    configure=_configure,
    run=_run,
)
