"""Skip the producer tests (not fail at import) while a shared module they need is absent."""

from __future__ import annotations

import importlib.util

_NEEDED = ("shardline.errormap", "shardline.retry", "shardline.clients")

collect_ignore: list[str] = []
if any(importlib.util.find_spec(name) is None for name in _NEEDED):
    collect_ignore.append("test_kinesis_producer.py")
