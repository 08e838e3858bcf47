#!/usr/bin/env python3
"""Install checkov into its own virtual environment at ``.cache/checkov-venv``.

checkov pins its own versions of boto3, botocore and packaging (older than the ones Shardline
runs on), so it is kept out of the project's environment; tests/deploy/test_checkov.py runs
``.cache/checkov-venv/bin/checkov`` when it is there.  Everything installs in pip's
hash-checking mode from ``deploy/checkov-requirements.txt``.

Usage: python deploy/scripts/install_checkov.py [--if-missing]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".cache" / "checkov-venv"
LOCK = ROOT / "deploy" / "checkov-requirements.txt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--if-missing", action="store_true", help="do nothing when checkov is installed already"
    )
    args = parser.parse_args(argv)
    checkov = VENV / "bin" / "checkov"
    if args.if_missing and checkov.is_file():
        return 0
    venv.EnvBuilder(with_pip=True, clear=not args.if_missing).create(VENV)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--require-hashes", "--requirement", str(LOCK)], check=True)
    print(f"checkov installed in {VENV} from {LOCK.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
