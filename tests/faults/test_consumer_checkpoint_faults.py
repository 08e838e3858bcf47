"""Lease-table throttling and ConditionalCheckFailed storms (RELIABILITY row 10).

moto never throttles, so throttles and 5xx answers are injected with a botocore
``before-call`` hook on a real client talking to moto over the wire: the hook answers
instead of the server for the first N calls, then lets calls through.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiobotocore.session import get_session
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ReadTimeoutError

from consumers.checkpoint.base import Lease
from consumers.checkpoint.dynamodb import DynamoDBCheckpointStore
from shardline.clients import DEFAULT_CLIENT_CONFIG
from shardline.errors import LeaseLostError, ThrottledError
from shardline.retry import RetryPolicy

pytestmark = pytest.mark.integration

QUICK_RETRY = RetryPolicy(max_attempts=6, initial_backoff=0.001, max_backoff=0.005, deadline=None)


class InjectedFailures:
    """Answers ``count`` calls of ``operation`` with an error, then lets calls through."""

    def __init__(self, code: str, status: int, count: int) -> None:
        self.code = code
        self.status = status
        self.remaining = count
        self.injected = 0
        self.passed = 0

    def __call__(self, **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if self.remaining == 0:
            self.passed += 1
            return None
        self.remaining -= 1
        self.injected += 1
        response = AWSResponse("http://injected", self.status, HTTPHeaders(), None)
        parsed = {
            "Error": {"Code": self.code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": self.status},
        }
        return response, parsed


@pytest.fixture
async def dynamodb(moto_endpoint: str) -> AsyncIterator[Any]:
    session = get_session()
    client_context = session.create_client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    async with client_context as client:
        yield client


async def _store(client: Any, retry: RetryPolicy = QUICK_RETRY) -> DynamoDBCheckpointStore:
    store = DynamoDBCheckpointStore(
        f"leases-faults-{uuid.uuid4().hex[:12]}", client=client, create_table=True, retry=retry
    )
    await store.create_if_absent("shardId-000000000000")
    return store


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("InternalServerError", 500),
    ],
)
async def test_throttled_checkpoint_is_retried_and_lands(dynamodb: Any, code: str, status: int) -> None:
    store = await _store(dynamodb)
    lease = await store.acquire("shardId-000000000000", "worker-a")
    faults = InjectedFailures(code, status, count=4)
    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", faults)
    try:
        updated = await store.checkpoint(lease, "12345")
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.UpdateItem", faults)
    assert (faults.injected, faults.passed) == (4, 1)
    assert updated.checkpoint == "12345"
    stored = await store.get("shardId-000000000000")
    assert stored is not None
    assert stored.checkpoint == "12345"


async def test_endless_throttling_gives_up_with_a_typed_retriable_error(dynamodb: Any) -> None:
    store = await _store(dynamodb)
    lease = await store.acquire("shardId-000000000000", "worker-a")
    faults = InjectedFailures("ProvisionedThroughputExceededException", 400, count=10_000)
    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", faults)
    try:
        with pytest.raises(ThrottledError) as raised:
            await store.checkpoint(lease, "1")
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.UpdateItem", faults)
    assert raised.value.retriable
    assert faults.injected == QUICK_RETRY.max_attempts  # bounded
    # the lease survived the storm untouched and is still usable afterwards
    stored = await store.get("shardId-000000000000")
    assert stored == lease
    assert (await store.checkpoint(lease, "2")).checkpoint == "2"


async def test_throttled_reads_are_retried(dynamodb: Any) -> None:
    store = await _store(dynamodb)
    faults = InjectedFailures("ProvisionedThroughputExceededException", 400, count=3)
    dynamodb.meta.events.register("before-call.dynamodb.GetItem", faults)
    try:
        lease = await store.get("shardId-000000000000")
    finally:
        dynamodb.meta.events.unregister("before-call.dynamodb.GetItem", faults)
    assert lease is not None
    assert faults.injected == 3


async def test_conditional_check_failed_storm_never_crashes_and_fencing_holds(dynamodb: Any) -> None:
    """Many workers fight over one lease; every failure is a LeaseLostError, the table stays
    consistent and a checkpoint only ever lands for the holder of the current counter."""
    store = await _store(dynamodb)
    rng = random.Random(7)
    landed: list[tuple[str, int, str]] = []
    unexpected: list[BaseException] = []

    async def worker(name: str) -> None:
        held: Lease | None = None
        for round_number in range(6):
            try:
                if held is None or rng.random() < 0.5:
                    held = await store.acquire("shardId-000000000000", name)
                sequence = str(1000 * round_number + rng.randrange(1000))
                held = await store.checkpoint(held, sequence)
                landed.append((name, held.counter, sequence))
            except LeaseLostError:
                held = None
            except Exception as exc:
                unexpected.append(exc)

    await asyncio.gather(*(worker(f"worker-{index}") for index in range(6)))
    assert unexpected == []
    final = await store.get("shardId-000000000000")
    assert final is not None
    assert final.owner is not None
    # every landed checkpoint was written at the counter its writer held; the last one for
    # the final counter came from the final owner
    at_final_counter = [entry for entry in landed if entry[1] == final.counter]
    assert all(owner == final.owner for owner, _, _ in at_final_counter)
    if at_final_counter:
        assert final.checkpoint == at_final_counter[-1][2]


class LoseResponses:
    """An ``after-call`` hook: the server applied the call, but the client sees a read timeout.

    That is what a dropped response looks like to the caller; the store's retry then sends
    the same conditional write again.
    """

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.lost = 0

    def __call__(self, **kwargs: Any) -> None:
        if self.remaining > 0:
            self.remaining -= 1
            self.lost += 1
            raise ReadTimeoutError(endpoint_url="http://injected-lost-response")


async def test_renew_whose_response_was_lost_keeps_the_lease(dynamodb: Any) -> None:
    """The first renew was applied (counter + 1) but its answer never arrived: the retry's
    condition is false, yet the lease is still ours, so no LeaseLostError."""
    store = await _store(dynamodb)
    lease = await store.acquire("shardId-000000000000", "worker-a")
    lost = LoseResponses(1)
    dynamodb.meta.events.register("after-call.dynamodb.UpdateItem", lost)
    try:
        renewed = await store.renew(lease)
    finally:
        dynamodb.meta.events.unregister("after-call.dynamodb.UpdateItem", lost)
    assert lost.lost == 1
    assert (renewed.owner, renewed.counter) == ("worker-a", lease.counter + 1)
    assert await store.get("shardId-000000000000") == renewed
    # the returned copy is the current fencing token: the next checkpoint lands
    assert (await store.checkpoint(renewed, "77")).checkpoint == "77"


async def test_acquire_whose_response_was_lost_returns_the_lease(dynamodb: Any) -> None:
    store = await _store(dynamodb)
    lost = LoseResponses(1)
    dynamodb.meta.events.register("after-call.dynamodb.UpdateItem", lost)
    try:
        lease = await store.acquire("shardId-000000000000", "worker-a")
    finally:
        dynamodb.meta.events.unregister("after-call.dynamodb.UpdateItem", lost)
    assert lost.lost == 1
    assert (lease.owner, lease.counter) == ("worker-a", 1)


async def test_lost_renew_response_after_a_steal_is_still_lease_lost(dynamodb: Any) -> None:
    """The read-back only vouches for our own write: if another worker took the lease,
    the renew fails as before."""
    store = await _store(dynamodb)
    mine = await store.acquire("shardId-000000000000", "worker-a")
    await store.acquire("shardId-000000000000", "worker-b")
    lost = LoseResponses(1)
    dynamodb.meta.events.register("after-call.dynamodb.UpdateItem", lost)
    try:
        with pytest.raises(LeaseLostError):
            await store.renew(mine)
    finally:
        dynamodb.meta.events.unregister("after-call.dynamodb.UpdateItem", lost)
    stored = await store.get("shardId-000000000000")
    assert stored is not None and stored.owner == "worker-b"


async def test_store_built_client_has_no_hidden_botocore_retries(moto_endpoint: str) -> None:
    store = DynamoDBCheckpointStore(
        f"leases-client-{uuid.uuid4().hex[:12]}", endpoint_url=moto_endpoint, create_table=True
    )
    try:
        await store.create_if_absent("shardId-000000000000")
        client = await store._dynamodb()
        assert client.meta.config.retries["total_max_attempts"] == 1
        assert client.meta.config.connect_timeout == DEFAULT_CLIENT_CONFIG.connect_timeout  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_checkpoint_whose_response_was_lost_is_recognised_as_ours(dynamodb: Any) -> None:
    """A checkpoint bumps leaseCounter as the KCL's does, so a retry after a lost answer finds
    its condition false; the read-back (us, counter + 1, our position) vouches for it."""
    store = await _store(dynamodb)
    lease = await store.acquire("shardId-000000000000", "worker-a")
    lost = LoseResponses(1)
    dynamodb.meta.events.register("after-call.dynamodb.UpdateItem", lost)
    try:
        checkpointed = await store.checkpoint(lease, "88", 2)
    finally:
        dynamodb.meta.events.unregister("after-call.dynamodb.UpdateItem", lost)
    assert lost.lost == 1
    assert (checkpointed.counter, checkpointed.checkpoint, checkpointed.sub_sequence_number) == (
        lease.counter + 1,
        "88",
        2,
    )
    assert await store.get("shardId-000000000000") == checkpointed


async def test_lost_checkpoint_response_after_a_steal_and_checkpoint_is_lease_lost(dynamodb: Any) -> None:
    store = await _store(dynamodb)
    mine = await store.acquire("shardId-000000000000", "worker-a")
    theirs = await store.acquire("shardId-000000000000", "worker-b")
    await store.checkpoint(theirs, "90")
    lost = LoseResponses(1)
    dynamodb.meta.events.register("after-call.dynamodb.UpdateItem", lost)
    try:
        with pytest.raises(LeaseLostError):
            await store.checkpoint(mine, "89")
    finally:
        dynamodb.meta.events.unregister("after-call.dynamodb.UpdateItem", lost)
    stored = await store.get("shardId-000000000000")
    assert stored is not None and (stored.owner, stored.checkpoint) == ("worker-b", "90")
