"""Load a user transform named ``module:function`` (CLI ``--transform``, KCL adapter)."""

from __future__ import annotations

import importlib

from consumers.pipeline import Transform
from shardline.errors import ConfigurationError

__all__ = ["load_transform"]


def load_transform(spec: str) -> Transform:
    """Import ``module:function``; raise :class:`ConfigurationError` when it is not a callable."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError("transform must be given as module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import transform module {module_name!r}: {exc}") from exc
    loaded = module
    for part in attribute.split("."):
        loaded = getattr(loaded, part, None)  # type: ignore[assignment]
        if loaded is None:
            raise ConfigurationError(f"transform {spec!r} not found")
    if not callable(loaded):
        raise ConfigurationError(f"transform {spec!r} is not callable")
    result: Transform = loaded
    return result
