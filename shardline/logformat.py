"""Log lines for the command-line tools: JSON for services, readable text for a terminal.

Both carry the same fields: time, level, logger, message and the ``extra`` fields a call
passes (never a record payload).  ``setup_logging(level, "auto")`` picks text when stderr is a
terminal and JSON otherwise, so a person at a shell reads sentences while a service's log
collector still gets one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Any, TextIO

from shardline.printable import printable

__all__ = ["LOG_FORMATS", "JsonLogFormatter", "TextLogFormatter", "setup_logging"]

LOG_FORMATS = ("auto", "text", "json")

_STANDARD_LOG_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key not in _STANDARD_LOG_FIELDS and not key.startswith("_"):
            fields[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
    if record.exc_info and record.exc_info[0] is not None:
        fields["error_type"] = record.exc_info[0].__name__
    return fields


class JsonLogFormatter(logging.Formatter):
    """One JSON object per log event: time, level, logger, message and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        return json.dumps(entry, separators=(",", ":"))


class TextLogFormatter(logging.Formatter):
    """``HH:MM:SS level  message  key=value ...``: one readable line per event, no traceback,
    control characters escaped (:mod:`shardline.printable`)."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = " ".join(f"{key}={value}" for key, value in _extras(record).items())
        level = record.levelname.lower()
        # for a terminal: a field's value can come from a stream or a bucket (an object key)
        return printable(f"{moment} {level:<7} {record.getMessage()}" + (f"  {fields}" if fields else ""))


def setup_logging(level: str, log_format: str = "auto", stream: TextIO | None = None) -> None:
    """Route every log record to ``stream`` (stderr) in ``log_format``; quiet the AWS SDK."""
    out = stream if stream is not None else sys.stderr
    chosen = log_format
    if chosen == "auto":
        chosen = "text" if out.isatty() else "json"
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextLogFormatter() if chosen == "text" else JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # botocore's DEBUG logs carry request bodies (payloads): never below WARNING
    for noisy in ("botocore", "aiobotocore", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
