"""Turn what an AWS client raised into the one error tree, for the sinks.

The translation itself lives in :mod:`shardline.errormap`; this module is the sinks' single
door to it, plus the one question sinks ask of per-entry error codes (Firehose
``ErrorCode``, DynamoDB cancellation reasons): retry, throttle or reject?
"""

from __future__ import annotations

import importlib
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from shardline.errors import ServiceError, ShardlineError, ThrottledError, TransientServiceError

__all__ = ["AWS_ERRORS", "classify_code", "translate"]

AWS_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, ClientError, OSError, TimeoutError)
"""What an aiobotocore call may raise besides our own errors; caught and translated."""

_THROTTLE_MARKERS = ("Throttl", "ProvisionedThroughputExceeded", "RequestLimitExceeded", "SlowDown")
_TRANSIENT_CODES = frozenset(
    {
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def _errormap() -> Any | None:
    try:
        return importlib.import_module("shardline.errormap")
    except ImportError:
        return None


def translate(exc: BaseException, service: str) -> ShardlineError:
    """The :class:`ShardlineError` for an exception raised by an AWS client call."""
    if isinstance(exc, ShardlineError):
        return exc
    errormap = _errormap()
    if errormap is not None and hasattr(errormap, "from_botocore"):
        translated: ShardlineError = errormap.from_botocore(exc)
        return translated
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        return _from_code(code, service, str(response.get("Error", {}).get("Message", "")))
    # connection errors, timeouts, dropped responses: the request may not have been applied
    return TransientServiceError(f"{type(exc).__name__} talking to {service}", service=service)


def _from_code(code: str, service: str, message: str = "") -> ServiceError:
    if any(marker in code for marker in _THROTTLE_MARKERS):
        return ThrottledError(message, code=code, service=service)
    if code in _TRANSIENT_CODES:
        return TransientServiceError(message, code=code, service=service)
    return ServiceError(message, code=code, service=service)


def classify_code(code: str, service: str) -> str:
    """``"throttled"``, ``"retry"`` or ``"rejected"`` for a per-entry error code."""
    if any(marker in code for marker in _THROTTLE_MARKERS):
        return "throttled"
    errormap = _errormap()
    error: ShardlineError = (
        errormap.from_error_code(code, service=service)
        if errormap is not None and hasattr(errormap, "from_error_code")
        else _from_code(code, service)
    )
    if isinstance(error, ThrottledError):
        return "throttled"
    return "retry" if error.retriable else "rejected"
