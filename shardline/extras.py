"""Optional extras: which extra provides which module, and the one line a command prints when one is missing.

Shardline's base install carries the producers, the consumers, the sinks and the ``shardline``
commands; everything else is an extra (``pip install 'shardline[bench]'``).  Every command-line
entry point runs through :func:`run_command`, so a missing optional dependency ends in one line
on stderr that names the extra to install, and exit status 2, never in a traceback.  A module
that is not optional (a bug, or a broken install of the base) still raises.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from typing import TextIO

from shardline.errors import ShardlineError

__all__ = [
    "EXTRA_INSTALL",
    "MODULE_EXTRAS",
    "MissingExtraError",
    "extra_for_module",
    "install_hint",
    "require_module",
    "run_command",
]

# Top-level module -> the extras that provide it, preferred first.  A command that needs a
# module from several extras says which one it means (``prefer``).
MODULE_EXTRAS: Mapping[str, tuple[str, ...]] = {
    "confluent_kafka": ("kafka", "local", "bench-peers"),
    "aws_msk_iam_sasl_signer": ("kafka",),
    "opentelemetry": ("otel",),
    "rich": ("bench",),
    "jinja2": ("bench",),
    "jsonschema": ("bench",),
    "hdrh": ("bench",),
    "moto": ("bench", "local"),
    "flask": ("bench", "local"),
    "flask_cors": ("bench", "local"),
    "aiokafka": ("bench-peers",),
    "aiokpl": ("bench-peers",),
    "kinesis": ("bench-peers",),
    "aws_kinesis_agg": ("bench-peers",),
    "amazon_kclpy": ("kcl",),
}

# How to install an extra when plain ``pip install 'shardline[EXTRA]'`` is not the whole story.
EXTRA_INSTALL: Mapping[str, str] = {
    # amazon-kclpy's setup.py downloads the KCL jars from Maven Central; the installer builds
    # its Python half without them (see consumers.adapters.kclpy_install).
    "kcl": "pip install 'shardline[kcl]' && shardline-install-kclpy",
}


class MissingExtraError(ShardlineError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    def __init__(self, module: str, extra: str) -> None:
        module = module.partition(".")[0]  # what to install, not which submodule failed
        self.module = module
        self.extra = extra
        super().__init__(
            f"needs the {extra!r} extra (module {module!r} is not installed): {install_hint(extra)}"
        )


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return EXTRA_INSTALL.get(extra, f"pip install 'shardline[{extra}]'")


def extra_for_module(module: str | None, prefer: str | None = None) -> str | None:
    """The extra that provides ``module`` (dotted names count by their top level), or None."""
    if not module:
        return None
    extras = MODULE_EXTRAS.get(module.partition(".")[0], ())
    if not extras:
        return None
    return prefer if prefer in extras else extras[0]


def require_module(module: str, extra: str) -> None:
    """Raise :class:`MissingExtraError` unless top-level ``module`` is installed (found, not imported).

    For dependencies that are used in a child process (``python -m moto.server``), where a
    missing module would otherwise surface as a server that never starts.
    """
    if "." in module:
        raise ValueError(f"require_module takes a top-level module name, got {module!r}")
    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(module, extra)


def run_command(
    prog: str, run: Callable[[], int], *, prefer: str | None = None, stderr: TextIO | None = None
) -> int:
    """``run()``, with a missing optional dependency reported as one line and exit status 2.

    ``prefer`` names the extra this command belongs to, for modules several extras provide.
    """
    out = stderr if stderr is not None else sys.stderr
    try:
        return run()
    except MissingExtraError as exc:
        print(f"{prog}: {exc}", file=out)
        return 2
    except ModuleNotFoundError as exc:
        extra = extra_for_module(exc.name, prefer)
        if extra is None:
            raise
        print(f"{prog}: {MissingExtraError(exc.name or '?', extra)}", file=out)
        return 2
