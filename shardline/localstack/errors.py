"""Errors of the local stack, rooted in the one Shardline exception tree."""

from __future__ import annotations

from shardline.errors import ShardlineError

__all__ = ["LocalStackError", "PrerequisiteMissingError", "ServerStartError"]


class LocalStackError(ShardlineError):
    """The local stack could not be installed, started, inspected or stopped."""


class PrerequisiteMissingError(LocalStackError):
    """A tool the local stack needs (node, npm, influxd, the registry) is unavailable.

    The message is one line that says what to install, so a fresh machine can be fixed
    without reading a traceback.
    """


class ServerStartError(LocalStackError):
    """A local server exited early or did not answer a real API call before its deadline."""
