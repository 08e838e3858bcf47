"""Every name a shared-core module lists in ``__all__`` exists (a stale export fails here)."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "shardline",
    "shardline.aggregation",
    "shardline.clients",
    "shardline.errormap",
    "shardline.errors",
    "shardline.retry",
    "shardline.serde",
    "shardline.shardmath",
    "shardline.validation",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    missing = [attr for attr in exported if not hasattr(module, attr)]
    assert missing == []
    assert len(set(exported)) == len(exported)
