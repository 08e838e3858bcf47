"""This process's CPU time and resident memory, as every benchmark here reads them."""

from __future__ import annotations

import os
import resource

__all__ = ["process_cpu_seconds", "rss_bytes"]

_PAGE = os.sysconf("SC_PAGE_SIZE")


def process_cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all its threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    """The process's resident set size now (Linux)."""
    with open("/proc/self/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE
