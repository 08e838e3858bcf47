"""Where the local stack keeps installed tools, logs and its state file.

Everything lives under one cache directory (``~/.cache/shardline`` unless
``SHARDLINE_CACHE_DIR`` says otherwise), so a fresh machine needs nothing
pre-installed and removing that directory resets the stack completely.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["cache_dir", "is_run_dir", "new_run_dir", "state_file"]

CACHE_ENV = "SHARDLINE_CACHE_DIR"
STATE_ENV = "SHARDLINE_LOCAL_STATE"


def cache_dir() -> Path:
    """The cache directory (an absolute path), created on first use.

    Absolute because servers run in their own working directory: a relative
    ``SHARDLINE_CACHE_DIR`` put relative paths (kinesis-mock's script, InfluxDB's config) on
    their command lines, and they failed to start.
    """
    configured = os.environ.get(CACHE_ENV)
    base = Path(configured).absolute() if configured else Path.home() / ".cache" / "shardline"
    base.mkdir(parents=True, exist_ok=True)
    return base


def new_run_dir(prefix: str = "run-") -> Path:
    """A fresh directory for one stack's logs and data; unique so concurrent runs never share."""
    runs = cache_dir() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=runs))


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a directory :func:`new_run_dir` made: the only kind ``down`` deletes.

    The state file is plain JSON anyone with access to it can edit; ``down`` deleted whatever
    directory it named.  A directory elsewhere (or under another ``SHARDLINE_CACHE_DIR`` than
    the current one) is left in place.
    """
    runs = (cache_dir() / "runs").resolve()
    try:
        resolved = path.resolve()
    except OSError:
        return False
    return resolved.parent == runs and resolved.name.startswith("run-") and resolved.is_dir()


def state_file() -> Path:
    """The file ``shardline local up`` records its servers in, for ``status`` and ``down``.

    ``SHARDLINE_LOCAL_STATE`` points elsewhere, so a second stack (a test's, say) can share
    the installed tools without touching the developer's own stack.
    """
    configured = os.environ.get(STATE_ENV)
    return Path(configured) if configured else cache_dir() / "local-stack.json"
