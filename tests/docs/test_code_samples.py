"""Every Python code sample in README.md and docs/ runs, as written, against a local stack,
on its own, in any order of the documents, and twice.

Each sample runs in a fresh interpreter of its own, as a reader pasting it into a new ``python``
does: a sample that uses a name only an earlier sample defined fails here.  The samples of one
document run in the order the guide gives them (a later step may use a stream an earlier one
created).  All documents share one moto server and one working directory, as a reader following
several guides does: every document runs once in file-name order, then again in the reverse
order, so a guide that collides with another one's streams or tables, or fails when run a second
time, fails here.  Samples create the streams and tables they use.  Kafka samples get the
session's Tansu broker through SHARDLINE_KAFKA_BOOTSTRAP.  A sample that fails names its
document, the pass and the line it starts on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardline.local.processes import ServerHandle
from shardline.local.services import start_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def samples(document: Path) -> list[tuple[int, str]]:
    """(line number, code) of every ```python block of ``document``."""
    text = document.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start()) + 1, match.group(1)) for match in _FENCE.finditer(text)]


DOCUMENTS_WITH_SAMPLES = [document for document in DOCUMENTS if samples(document)]

_RUNNER = textwrap.dedent(
    """
    import sys
    exec(compile(sys.stdin.read(), sys.argv[1], "exec"), {"__name__": "__main__"})
    """
)


RUNS = [("first", document) for document in DOCUMENTS_WITH_SAMPLES] + [
    ("again", document) for document in reversed(DOCUMENTS_WITH_SAMPLES)
]


@pytest.fixture(scope="module")
def shared_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = start_server("moto", tmp_path_factory.mktemp("docs-moto"))
    try:
        yield handle
    finally:
        handle.stop(timeout=5.0)


@pytest.fixture(scope="module")
def reader_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docs-reader")


def test_the_docs_have_samples() -> None:
    assert len(DOCUMENTS_WITH_SAMPLES) >= 4, [d.name for d in DOCUMENTS_WITH_SAMPLES]


@pytest.mark.parametrize(("run", "document"), RUNS, ids=[f"{run}-{document.name}" for run, document in RUNS])
def test_samples_run(
    run: str, document: Path, shared_moto: ServerHandle, kafka_bootstrap: str, reader_directory: Path
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_ENDPOINT_URL")}
    env.update(
        AWS_ENDPOINT_URL=shared_moto.endpoint,
        SHARDLINE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        PYTHONPATH=str(ROOT),
    )
    for line, code in samples(document):
        where = f"{document.name}:{line}"
        result = subprocess.run(
            [sys.executable, "-c", _RUNNER, where],
            input=code,
            cwd=reader_directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, (
            f"sample at {where} failed ({run} run)\n" + result.stdout[-3000:] + result.stderr[-6000:]
        )
