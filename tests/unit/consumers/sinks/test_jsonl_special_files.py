"""A file sink or dead-letter file pointed at something that is not a regular file.

``--sink /dev/stdout`` or a FIFO blocked the consumer before it started (the index is
rebuilt by reading the file), ``/dev/zero`` filled memory, and ``/dev/null`` took every write
and kept none; each is now refused as a bad argument before anything is read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from consumers.sinks.deadletter import FileDeadLetter
from consumers.sinks.file import FileSink
from shardline.errors import ConfigurationError


def test_a_character_device_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a regular file"):
        FileSink("/dev/null")
    with pytest.raises(ConfigurationError, match="not a regular file"):
        FileDeadLetter("/dev/null")


def test_a_nul_in_the_path_is_a_bad_argument(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="NUL"):
        FileSink(f"{tmp_path}/a\0b.jsonl")


def test_a_path_under_a_file_is_a_bad_argument(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    with pytest.raises(ConfigurationError, match="cannot use"):
        FileSink(tmp_path / "plain" / "out.jsonl")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    # in a child: opening a FIFO nobody writes to blocks, and a thread stuck so cannot be ended
    code = (
        "import sys\n"
        "from consumers.sinks.file import FileSink\n"
        "from shardline.errors import ConfigurationError\n"
        "try:\n"
        "    FileSink(sys.argv[1])\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(2)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(fifo)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=Path(__file__).resolve().parents[4],
        )
    except subprocess.TimeoutExpired:
        pytest.fail("building a file sink on a FIFO blocked")
    assert done.returncode == 2, done.stderr
    assert "not a regular file" in done.stdout


def test_a_regular_file_is_still_taken(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"")
    assert len(FileSink(path).file) == 0
