"""Which leases other workers still hold: the KCL's expiry rule, judged by observation.

A worker may take a lease that has no owner, and a lease another worker holds only once
that worker stopped renewing it: its ``leaseCounter`` was seen unchanged for the expiry time
(the KCL's failover time).  Clocks of different machines are never compared; each worker
times, on its own clock, how long it has seen a lease's owner and counter stand still, as
the KCL's ``DynamoDBLeaseTaker`` does.  A lease this worker lost to another one is judged by
the same rule as any other: taken back once its new holder stops renewing it, never while
the holder renews it.

Pure bookkeeping (no I/O): the source feeds it every listing of the lease table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from consumers.checkpoint.base import Lease

__all__ = ["LeaseExpiry"]


class LeaseExpiry:
    """Watches the leases of other workers and says which ones are still held.

    Args:
        owner: this worker's lease-owner name; a lease under it is never another's.
        expiry: seconds a lease's counter must stand still before it counts as abandoned.
        clock: monotonic seconds (injected in tests).
    """

    __slots__ = ("_clock", "_expiry", "_owner", "_seen")

    def __init__(self, owner: str, expiry: float, clock: Callable[[], float]) -> None:
        self._owner = owner
        self._expiry = expiry
        self._clock = clock
        self._seen: dict[str, tuple[str, int, float]] = {}
        """Per shard: the owner and counter last listed, and since when they stood still."""

    def held_elsewhere(self, leases: Iterable[Lease]) -> set[str]:
        """The shards whose leases another worker holds, from one listing of the table.

        A lease counts as held from the first time it is seen under another owner until its
        owner and counter have been seen unchanged for the expiry time.
        """
        now = self._clock()
        seen: dict[str, tuple[str, int, float]] = {}
        held: set[str] = set()
        for lease in leases:
            if lease.owner is None or lease.owner == self._owner:
                continue
            before = self._seen.get(lease.shard_id)
            unchanged = before is not None and before[:2] == (lease.owner, lease.counter)
            since = before[2] if before is not None and unchanged else now
            seen[lease.shard_id] = (lease.owner, lease.counter, since)
            if now - since < self._expiry:
                held.add(lease.shard_id)
        self._seen = seen
        return held
