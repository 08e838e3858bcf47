"""InfluxDB's config names its data directories as TOML strings, whatever the cache path holds.

The paths were pasted between double quotes: a cache directory with a ``"`` or a ``\\`` in
its path gave influxd a config it could not parse, and it exited at every start.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from shardline.local import installers, services
from shardline.local.errors import ServerStartError
from shardline.local.processes import ServerHandle


@pytest.mark.parametrize("name", ['with "quotes"', "back\\slash", "it's a tab\there", "ünï cödé"])
def test_influxdb_config_parses_with_any_directory_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    plans: list[Callable[[Path], services._LaunchPlan]] = []

    def capture(
        _name: str, plan: Callable[[Path], services._LaunchPlan], *_: object, **__: object
    ) -> ServerHandle:
        plans.append(plan)
        raise ServerStartError("not started in this test")

    monkeypatch.setattr(installers, "find_influxd", lambda: "/usr/bin/influxd")
    monkeypatch.setattr(services, "_start", capture)
    with pytest.raises(ServerStartError):
        services.start_influxdb(tmp_path)
    server_dir = tmp_path / name / "influxdb"
    server_dir.mkdir(parents=True)
    plans[0](server_dir)

    config = tomllib.loads((server_dir / "influxdb.conf").read_text())
    assert config["meta"]["dir"] == str(server_dir / "meta")
    assert config["data"]["dir"] == str(server_dir / "data")
    assert config["data"]["wal-dir"] == str(server_dir / "wal")
