"""A sink's own AWS client comes from the one client factory: no botocore retry loop under the
sink's retry policy, Shardline's ``User-Agent``, and closed with the sink.  No request is sent."""

from __future__ import annotations

import pytest

from consumers.sinks.awsclient import LazyClient
from shardline.clients import USER_AGENT


async def test_a_built_client_has_the_factory_settings_and_is_closed_by_its_owner() -> None:
    lazy = LazyClient("dynamodb", endpoint_url="http://127.0.0.1:9", region_name="eu-west-1")
    client = await lazy.get()
    assert await lazy.get() is client  # built once
    assert client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert client.meta.config.user_agent.startswith(USER_AGENT)
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    await lazy.close()
    assert lazy._client is None  # a later get() would build a fresh one


async def test_an_injected_client_is_used_and_left_open() -> None:
    class Injected:
        closed = False

        async def close(self) -> None:  # pragma: no cover - must not be called
            self.closed = True

    injected = Injected()
    lazy = LazyClient("firehose", client=injected)
    assert await lazy.get() is injected
    await lazy.close()
    assert not injected.closed


@pytest.mark.parametrize("service", ["s3", "firehose", "timestream-write"])
async def test_every_sink_service_builds(service: str) -> None:
    lazy = LazyClient(service, region_name="us-east-1")
    client = await lazy.get()
    assert client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    await lazy.close()


def test_the_repr_hides_the_endpoints_user_info() -> None:
    from consumers.sinks.awsclient import LazyClient

    shown = repr(LazyClient("s3", endpoint_url="https://admin:pw-secret@s3.example.com:9000"))
    assert "pw-secret" not in shown and "https://***@s3.example.com:9000" in shown
    assert repr(LazyClient("s3")) == "LazyClient('s3', endpoint_url=None)"
