"""Loading the CloudFormation templates under deploy/ with their intrinsic-function tags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cfnlint.decode import decode

TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "cloudformation"
TEMPLATES = sorted(TEMPLATE_DIR.glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    template, matches = decode(str(path))
    assert not matches, f"{path.name} does not parse: {matches}"
    assert template is not None
    return dict(template)
