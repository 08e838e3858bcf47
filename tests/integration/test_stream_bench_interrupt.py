"""Ctrl-C / SIGTERM on ``stream-bench run`` keeps what was measured: a partial result and report
marked "interrupted", exit status 130, no traceback; SIGTERM works even where SIGINT is ignored.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.result import validate_result

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _start(out: Path, *, ignore_sigint: bool) -> subprocess.Popen[str]:
    def ignore() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.entry", "run", "--duration", "120", "--rate", "200",
         "--shards", "1", "--consumer", "none", "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore if ignore_sigint else None,
    )  # fmt: skip


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm-with-sigint-ignored"]
)
def test_an_interrupted_run_writes_its_partial_result(sig: signal.Signals, tmp_path: Path) -> None:
    process = _start(tmp_path, ignore_sigint=sig is signal.SIGTERM)
    assert process.stderr is not None
    try:
        for _ in range(200):  # progress lines: one a second once records flow
            line = process.stderr.readline()
            if line.startswith("[") and " sent " in line and "sent 0 " not in line:
                break
        else:
            raise AssertionError("no progress line")
        signalled = time.monotonic()
        process.send_signal(sig)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    stopped_in = time.monotonic() - signalled
    assert process.returncode == 130, err[-2000:]
    assert "Traceback" not in err + out
    assert "interrupted" in err
    result = json.loads((tmp_path / "result.json").read_text())
    validate_result(result)
    assert result["interrupted"] is True
    assert 0 < result["summary"]["records_sent"] < 120 * 200
    assert any("interrupted after" in note for note in result["notes"])
    assert "(interrupted)" in (tmp_path / "report.html").read_text()
    print(f"stopped {stopped_in:.2f} s after {sig.name}")
