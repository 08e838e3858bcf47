"""The runtime never loads the local emulator manager, the benchmark (and its gateway and fault
injectors) or test machinery: importing the producers and consumers, or running
``shardline consume --help``, leaves them out of ``sys.modules``.

Each check runs in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Modules that belong to the bench, local or test roles, never to the runtime.
NOT_RUNTIME = ("shardline.local", "benchmarks", "tests", "moto", "rich", "flask")

_REPORT = """
import json, sys
{body}
print(json.dumps(sorted(sys.modules)), file=sys.__stdout__)
"""

SCENARIOS = {
    "import producers": "import producers; from producers import KinesisProducer, SyncKinesisProducer",
    "import consumers": (
        "import consumers, consumers.pipeline, consumers.kinesis, consumers.sinks.uri, "
        "consumers.checkpoint.uri, consumers.replay"
    ),
    "shardline consume --help": (
        "import contextlib, io\n"
        "from shardline.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['consume', '--help'])\n"
        "    except SystemExit as done:\n"
        "        assert done.code == 0, done.code\n"
    ),
}


def _loaded_modules(body: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _REPORT.format(body=body)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_runtime_entry_points_never_load_bench_local_or_test_modules(scenario: str) -> None:
    modules = _loaded_modules(SCENARIOS[scenario])
    assert "shardline" in modules  # the scenario really ran
    leaked = [
        name for name in modules if any(name == root or name.startswith(root + ".") for root in NOT_RUNTIME)
    ]
    assert leaked == []


def test_the_check_sees_a_bench_import() -> None:
    """The same probe does report the gateway when something imports it."""
    modules = _loaded_modules("import benchmarks.gateway")
    assert "benchmarks.gateway.faults" in modules
