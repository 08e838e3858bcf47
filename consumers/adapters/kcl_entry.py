"""The ``shardline-kcl-processor`` console script: the KCL record processor behind the extras guard.

``python -m consumers.adapters.kcl`` and this script run the same processor; this one imports
amazon-kclpy only inside :func:`shardline.extras.run_command`, so an install without it gets
one line saying how to install the ``kcl`` extra instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

from shardline.extras import run_command

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    def run() -> int:
        from consumers.adapters.kcl import main as processor_main

        return processor_main(argv)

    return run_command("shardline-kcl-processor", run, prefer="kcl")


if __name__ == "__main__":
    raise SystemExit(main())
