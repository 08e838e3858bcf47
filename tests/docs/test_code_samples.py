"""Every Python code sample in README.md and docs/ runs, as written, against a local stack.

The samples of one document run in order in one fresh interpreter (a later sample may use
names an earlier one defined), against a fresh moto server, so each document starts from an
empty account: samples create the streams and tables they use, as a reader would.  Kafka
samples get the session's Tansu broker through SHARDLINE_KAFKA_BOOTSTRAP.  A sample that
fails names its document and the line it starts on.
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
    import sys, traceback
    namespace = {"__name__": "__main__"}
    for line, code in SAMPLES:
        try:
            exec(compile(code, f"{DOCUMENT}:{line}", "exec"), namespace)
        except BaseException:
            traceback.print_exc()
            print(f"sample at {DOCUMENT}:{line} failed", file=sys.stderr)
            sys.exit(1)
    """
)


@pytest.fixture
def fresh_moto(tmp_path: Path) -> Iterator[ServerHandle]:
    handle = start_server("moto", tmp_path)
    try:
        yield handle
    finally:
        handle.stop(timeout=5.0)


def test_the_docs_have_samples() -> None:
    assert len(DOCUMENTS_WITH_SAMPLES) >= 4, [d.name for d in DOCUMENTS_WITH_SAMPLES]


@pytest.mark.parametrize("document", DOCUMENTS_WITH_SAMPLES, ids=lambda d: d.name)
def test_samples_run(document: Path, fresh_moto: ServerHandle, kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_ENDPOINT_URL")}
    env.update(
        AWS_ENDPOINT_URL=fresh_moto.endpoint,
        SHARDLINE_KAFKA_BOOTSTRAP=kafka_bootstrap,
        PYTHONPATH=str(ROOT),
    )
    program = f"DOCUMENT = {document.name!r}\nSAMPLES = {samples(document)!r}\n{_RUNNER}"
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
