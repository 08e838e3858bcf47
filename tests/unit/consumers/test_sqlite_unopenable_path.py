"""A SQLite checkpoint path that cannot be created is a CheckpointError, like one SQLite itself
cannot open.  Creating the private file and its directories failed first with a bare
NotADirectoryError or PermissionError, which escaped the error tree: ``shardline consume``
printed a traceback instead of its one-line error and exit status."""

from __future__ import annotations

from pathlib import Path

import pytest

import consumers.checkpoint.sqlite as sqlite_store
from consumers.checkpoint.sqlite import SQLiteCheckpointStore
from shardline.errors import CheckpointError


async def test_a_path_below_a_regular_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "leases"
    not_a_directory.write_text("")
    store = SQLiteCheckpointStore(not_a_directory / "leases.db")

    with pytest.raises(CheckpointError, match="cannot open checkpoint database"):
        await store.list()
    await store.close()


async def test_a_path_without_permission_is_a_checkpoint_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(path: object) -> bool:
        raise PermissionError(13, "Permission denied", str(path))

    # the permission is refused by the double: the tests may run as root
    monkeypatch.setattr(sqlite_store, "create_private_file", refused)
    store = SQLiteCheckpointStore(tmp_path / "leases.db")

    with pytest.raises(CheckpointError, match="cannot open checkpoint database"):
        await store.create_if_absent("shardId-000000000000")
    await store.close()
