"""checkov on deploy/cloudformation: every finding is either fixed or listed with its reason.

checkov runs from its own environment at ``.cache/checkov-venv`` (made by
``deploy/scripts/install_checkov.py``; checkov pins older boto3/botocore than Shardline's), or
from the current interpreter when it is installed there; without either the test is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = ROOT / "deploy" / "cloudformation"
SKIPS = ROOT / "deploy" / "checkov-skips.yaml"
ISOLATED = ROOT / ".cache" / "checkov-venv" / "bin" / "checkov"


def _checkov_command() -> list[str] | None:
    if ISOLATED.is_file():
        return [str(ISOLATED)]
    if importlib.util.find_spec("checkov") is not None:
        return [sys.executable, "-m", "checkov.main"]
    return None


def _skips() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load(SKIPS.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_every_skip_has_a_reason_and_names_its_resources() -> None:
    templates = {path.name for path in TEMPLATE_DIR.glob("*.yaml")}
    for check, entry in _skips().items():
        assert check.startswith("CKV_"), check
        assert entry["resources"], check
        for resource in entry["resources"]:
            template, _, logical = str(resource).partition(":")
            assert template in templates and "." in logical, (
                f"{check}: name it as template.yaml:Type.LogicalId"
            )
        assert len(str(entry["reason"]).split()) >= 10, f"{check}: give the reason in a sentence"


def _findings() -> set[tuple[str, str]]:
    command = _checkov_command()
    if command is None:
        if os.environ.get("CI"):  # CI installs it (.ci/run): a missing checkov there is a failure
            pytest.fail("checkov is not installed: python deploy/scripts/install_checkov.py")
        pytest.skip("checkov is not installed: python deploy/scripts/install_checkov.py")
    result = subprocess.run(
        [
            *command,
            "--directory",
            str(TEMPLATE_DIR),
            "--framework",
            "cloudformation",
            "--skip-download",  # no calls to the vendor's API
            "--output",
            "json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert reports and all(r["summary"]["parsing_errors"] == 0 for r in reports)
    assert sum(r["summary"]["passed"] for r in reports) > 50  # it really looked at the templates
    # a finding names its template: two templates may use one logical id for different things
    return {
        (c["check_id"], f"{Path(c['file_path']).name}:{c['resource']}")
        for r in reports
        for c in r["results"]["failed_checks"]
    }


def test_checkov_reports_nothing_but_the_listed_exceptions() -> None:
    findings = _findings()
    accepted = {(check, resource) for check, entry in _skips().items() for resource in entry["resources"]}
    unexpected = sorted(findings - accepted)
    stale = sorted(accepted - findings)
    assert not unexpected, f"fix these or list them with a reason in {SKIPS.name}: {unexpected}"
    assert not stale, f"checkov no longer reports these; remove them from {SKIPS.name}: {stale}"
