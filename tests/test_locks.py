"""The hashed locks under requirements/ cover every role, agree with each other and with
pyproject.toml, and keep boto3 and aiobotocore on one botocore."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCKS = REPO / "requirements"
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[([^\]]*)\])?==([^\s\\]+)")


def _project() -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return project


def _roles() -> list[str]:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    return ["base", *sorted(name for name in extras if name != "dev")]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lock: Path) -> dict[str, str]:
    """name -> version of every requirement, asserting each carries a sha256 hash."""
    pins: dict[str, str] = {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
    for entry in entries:
        match = _PIN.match(entry)
        if match is None:
            continue
        assert "--hash=sha256:" in entry, f"{lock.name}: {match.group(1)} has no hash"
        pins[_normal(match.group(1))] = match.group(3)
    assert pins, f"{lock.name} pins nothing"
    return pins


def _direct(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        name = _normal(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))  # type: ignore[union-attr]
        if name != "shardline":
            names.add(name)
    return names


@pytest.mark.parametrize("role", [*_roles(), "dev"])
def test_every_role_has_a_hashed_lock_consistent_with_the_dev_lock(role: str) -> None:
    pins = _pins(LOCKS / f"{role}.txt")
    dev = _pins(LOCKS / "dev.txt")
    differing = {name: (version, dev.get(name)) for name, version in pins.items() if dev.get(name) != version}
    assert differing == {}


@pytest.mark.parametrize("role", _roles())
def test_each_lock_pins_what_its_role_requires(role: str) -> None:
    project = _project()
    extras = project["optional-dependencies"]
    assert isinstance(extras, dict)
    dependencies = project["dependencies"]
    assert isinstance(dependencies, list)
    required = _direct(dependencies) | (_direct(extras[role]) if role != "base" else set())
    missing = required - set(_pins(LOCKS / f"{role}.txt"))
    assert missing == set()


@pytest.mark.parametrize("role", [*_roles(), "dev"])
def test_boto3_and_aiobotocore_share_one_botocore(role: str) -> None:
    pins = _pins(LOCKS / f"{role}.txt")
    assert {"boto3", "botocore", "aiobotocore"} <= set(pins)
    # boto3 X.Y.Z requires botocore X.Y.*
    assert pins["boto3"].split(".")[:2] == pins["botocore"].split(".")[:2]


def _pinned_extras(lock: Path) -> dict[str, set[str]]:
    """name -> the extras its pin names (``moto[server]==...``: {"server"})."""
    extras: dict[str, set[str]] = {}
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match is not None:
            extras[_normal(match.group(1))] = set(filter(None, (match.group(2) or "").split(",")))
    return extras


@pytest.mark.parametrize("role", _roles())
def test_a_requirement_with_extras_is_pinned_with_them(role: str) -> None:
    """``pip install --require-hashes`` of the wheel with its role's lock refuses a
    requirement like ``moto[server]>=5.0`` whose pin lacks the extra as soon as the index has
    a newer release (seen when moto 5.2.6 came out); a pin with the extra installs."""
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    declared = [r for r in (extras.get(role, []) if role != "base" else []) if "[" in r]
    pinned = _pinned_extras(LOCKS / f"{role}.txt")
    for requirement in declared:
        name, wanted = re.match(r"([A-Za-z0-9_.-]+)\[([^\]]*)\]", requirement).groups()  # type: ignore[union-attr]
        if _normal(name) == "shardline":
            continue
        assert set(wanted.split(",")) <= pinned.get(_normal(name), set()), f"{role}.txt: {requirement}"
