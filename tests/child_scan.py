"""Run a source-tree scan of a test module in a fresh interpreter and return its JSON result.

The scans parse every module with :func:`ast.parse`.  On Debian's Python 3.11.2 (what CI runs)
``ast.parse`` can fail with "AST constructor recursion depth mismatch" once something earlier
in the same process left the interpreter's recursion bookkeeping off (a CPython bug fixed in
3.11.5); a child interpreter per scan keeps the tree checks independent of what ran before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def scan_in_child(test_file: str, function: str) -> Any:
    """Call ``function()`` of the module at ``test_file`` in a child interpreter; its JSON result."""
    program = (
        "import json, runpy, sys; "
        f"ns = runpy.run_path({str(Path(test_file).resolve())!r}); "
        f"json.dump(ns[{function!r}](), sys.stdout)"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)
