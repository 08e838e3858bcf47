"""Errors of the local stack, rooted in the one Shardline exception tree."""

from __future__ import annotations

from shardline.errors import ShardlineError

__all__ = ["LocalEmulatorError", "PrerequisiteMissingError", "ServerStartError"]


class LocalEmulatorError(ShardlineError):
    """The local stack could not be installed, started, inspected or stopped."""


class PrerequisiteMissingError(LocalEmulatorError):
    """A tool the local stack needs (node, npm, influxd, the registry) is unavailable.

    The message is one line that says what to install, so a fresh machine can be fixed
    without reading a traceback.
    """


class ServerStartError(LocalEmulatorError):
    """A local server exited early or did not answer a real API call before its deadline."""
