"""Client factories: injected clients win, standard AWS configuration is honoured, botocore
does not retry underneath Shardline, and TLS stays verified.  No request is sent."""

from __future__ import annotations

import contextlib
import gc
import logging
import uuid
from pathlib import Path

import boto3
import pytest
from aiobotocore.session import get_session
from botocore.config import Config

from shardline import __version__
from shardline.clients import (
    DEFAULT_CLIENT_CONFIG,
    USER_AGENT,
    aiobotocore_client,
    boto3_client,
    client_config,
    default_region,
    new_aiobotocore_session,
)
from shardline.errors import ConfigurationError

BOGUS = "https://kinesis.bogus.invalid:4567"


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "missing-config"))


def test_botocore_does_not_retry_and_timeouts_are_set() -> None:
    client = boto3_client("kinesis", region_name="eu-west-1")
    assert client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert client.meta.config.connect_timeout == 5
    assert client.meta.config.read_timeout == 30
    assert client.meta.region_name == "eu-west-1"
    assert client._endpoint.http_session._verify is not False


def test_caller_config_is_merged_over_the_defaults() -> None:
    client = boto3_client("kinesis", region_name="us-east-1", config=Config(read_timeout=123))
    assert client.meta.config.read_timeout == 123
    assert client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert client_config() is DEFAULT_CLIENT_CONFIG


def test_endpoint_url_per_service_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", BOGUS)
    assert boto3_client("kinesis", region_name="us-east-1").meta.endpoint_url == BOGUS
    # other services are not affected, and an explicit endpoint wins over the environment
    assert boto3_client("dynamodb", region_name="us-east-1").meta.endpoint_url != BOGUS
    explicit = boto3_client("kinesis", region_name="us-east-1", endpoint_url="http://127.0.0.1:1")
    assert explicit.meta.endpoint_url == "http://127.0.0.1:1"


def test_injected_client_wins() -> None:
    sentinel = object()
    assert boto3_client("kinesis", client=sentinel, endpoint_url=BOGUS) is sentinel


def test_injected_session_is_used() -> None:
    session = boto3.Session(region_name="ap-southeast-2", aws_access_key_id="a", aws_secret_access_key="b")
    assert boto3_client("kinesis", session=session).meta.region_name == "ap-southeast-2"


def test_region_from_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_region: None) -> None:
    config = tmp_path / "config"
    config.write_text("[profile telemetry]\nregion = eu-central-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_PROFILE", "telemetry")
    assert default_region() == "eu-central-1"
    assert boto3_client("kinesis").meta.region_name == "eu-central-1"


def test_aws_region_is_honoured_when_botocore_finds_none(
    monkeypatch: pytest.MonkeyPatch, no_region: None
) -> None:
    monkeypatch.setenv("AWS_REGION", "sa-east-1")
    assert default_region() == "sa-east-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert default_region() == "us-west-2"


def test_missing_region_is_a_clear_configuration_error(no_region: None) -> None:
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        default_region()
    with pytest.raises(ConfigurationError):
        boto3_client("kinesis")


async def test_aiobotocore_client_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", BOGUS)
    async with aiobotocore_client("kinesis", region_name="us-east-1") as client:
        assert client.meta.endpoint_url == BOGUS
        assert client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    session = get_session()
    session.set_config_variable("region", "eu-north-1")
    async with aiobotocore_client("kinesis", session=session) as client:
        assert client.meta.region_name == "eu-north-1"


async def test_aiobotocore_injected_client_is_yielded_and_not_closed() -> None:
    class Client:
        closed = False

        async def close(self) -> None:
            self.closed = True

    injected = Client()
    async with aiobotocore_client("kinesis", client=injected) as client:
        assert client is injected
    assert not injected.closed


async def test_aiobotocore_missing_region(no_region: None) -> None:
    with pytest.raises(ConfigurationError):
        async with aiobotocore_client("kinesis"):
            pass


def _sent_user_agents(client: object) -> list[str]:
    """Answer every request at ``before-send`` (nothing leaves the process) and keep its
    ``User-Agent`` header as it would have gone on the wire."""
    from botocore.awsrequest import AWSResponse

    seen: list[str] = []

    def answer(request: object, **_: object) -> AWSResponse:
        header = request.headers["User-Agent"]  # type: ignore[attr-defined]
        seen.append(header.decode() if isinstance(header, bytes) else header)
        return AWSResponse("http://local", 200, {}, None)  # type: ignore[arg-type]

    client.meta.events.register("before-send.kinesis", answer)  # type: ignore[attr-defined]
    return seen


async def test_aiobotocore_clients_send_the_fixed_user_agent() -> None:
    async with aiobotocore_client(
        "kinesis", region_name="us-east-1", endpoint_url="http://127.0.0.1:9"
    ) as client:
        seen = _sent_user_agents(client)
        with contextlib.suppress(Exception):
            await client.list_streams()
    assert len(seen) == 1 and seen[0].startswith(f"{USER_AGENT} ")


def test_clients_send_the_fixed_user_agent_without_rebuilding_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.useragent import UserAgentString

    client = boto3_client("kinesis", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    seen = _sent_user_agents(client)
    built: list[int] = []
    original = UserAgentString._build_sdk_metadata

    def counting(self: UserAgentString) -> object:
        built.append(1)
        return original(self)

    monkeypatch.setattr(UserAgentString, "_build_sdk_metadata", counting)
    with contextlib.suppress(Exception):  # the empty answer does not parse; the header was sent
        client.list_streams()
    assert len(seen) == 1 and seen[0].startswith(f"{USER_AGENT} ")  # boto3 appends its versions
    assert USER_AGENT.startswith(f"Shardline/{__version__} Python/")
    assert built == []  # botocore's per-call "UA 2.1" assembly did not run


def test_a_callers_user_agent_still_wins() -> None:
    client = boto3_client("kinesis", region_name="us-east-1", config=Config(user_agent="fleet-gateway/7"))
    seen = _sent_user_agents(client)
    with contextlib.suppress(Exception):
        client.list_streams()
    assert len(seen) == 1 and seen[0].startswith("fleet-gateway/7")
    assert "Shardline" not in seen[0]


async def test_clients_built_here_share_one_data_loader_per_data_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The second client loads no botocore JSON of its own: its session reuses the loader."""
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))  # a data path no earlier test used
    grown: list[int] = []
    clients = []
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(2):
            gc.collect()
            before = len(gc.get_objects())
            clients.append(
                await stack.enter_async_context(aiobotocore_client("kinesis", region_name="us-east-1"))
            )
            gc.collect()
            grown.append(len(gc.get_objects()) - before)
        first, second = clients
        assert first._loader is second._loader
        assert str(tmp_path) in first._loader.search_paths
        assert first.meta.events is not second.meta.events  # each client keeps its own session
    assert grown[1] < grown[0] / 3, grown  # about 28,000 objects for the first here, 3,000 after

    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path / "other"))
    assert new_aiobotocore_session().get_component("data_loader") is not first._loader


async def test_a_given_session_keeps_its_own_loader() -> None:
    session = get_session()
    own = session.get_component("data_loader")
    async with aiobotocore_client("kinesis", session=session, region_name="us-east-1") as client:
        assert client._loader is own
    assert own is not new_aiobotocore_session().get_component("data_loader")


@pytest.mark.parametrize(
    "remote", ["http://10.1.2.3:4567", "http://kinesis.internal", "http://[fd00::7]:4567"]
)
async def test_a_plain_http_endpoint_beyond_the_machine_is_refused(
    monkeypatch: pytest.MonkeyPatch, remote: str
) -> None:
    """Signed requests, session token included, and the records would travel readable over
    http://: refused, as an InfluxDB token over plaintext is (it was only warned about)."""
    monkeypatch.delenv("SHARDLINE_ALLOW_PLAINTEXT_HOSTS", raising=False)
    with pytest.raises(ConfigurationError, match="SHARDLINE_ALLOW_PLAINTEXT_HOSTS") as raised:
        boto3_client("kinesis", region_name="eu-west-1", endpoint_url=remote)
    assert remote in str(raised.value) and "AWS_ENDPOINT_URL_KINESIS" in str(raised.value)
    with pytest.raises(ConfigurationError, match="plaintext"):
        async with aiobotocore_client("dynamodb", region_name="eu-west-1", endpoint_url=remote):
            pytest.fail("the client was handed out")
    # from the environment, as the local stack's variables are given
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", remote)
    with pytest.raises(ConfigurationError, match="plaintext"):
        async with aiobotocore_client("kinesis", region_name="eu-west-1"):
            pytest.fail("the client was handed out")


def test_a_refused_endpoint_is_named_without_its_user_info_or_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHARDLINE_ALLOW_PLAINTEXT_HOSTS", raising=False)
    with pytest.raises(ConfigurationError) as raised:
        boto3_client("s3", region_name="eu-west-1", endpoint_url="http://u:pw-secret@10.0.0.9:9000/x?k=v")
    assert "pw-secret" not in str(raised.value) and "http://10.0.0.9:9000 " in str(raised.value)


@pytest.mark.parametrize(
    "local",
    ["http://127.0.0.1:4567", "http://localhost:4567", "http://[::1]:4567", "https://kinesis.example.com"],
)
def test_loopback_and_tls_endpoints_are_allowed_without_a_word(
    caplog: pytest.LogCaptureFixture, local: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="shardline.clients"):
        assert boto3_client("kinesis", region_name="eu-west-1", endpoint_url=local).meta.endpoint_url == local
    assert not [record for record in caplog.records if "plaintext" in record.getMessage()]


async def test_a_host_allowed_by_name_is_used_and_warned_about_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    host = f"emulator-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SHARDLINE_ALLOW_PLAINTEXT_HOSTS", f"localstack, {host.upper()}")
    remote = f"http://{host}:4566"
    with caplog.at_level(logging.WARNING, logger="shardline.clients"):
        assert (
            boto3_client("kinesis", region_name="eu-west-1", endpoint_url=remote).meta.endpoint_url == remote
        )
        async with aiobotocore_client("kinesis", region_name="eu-west-1", endpoint_url=remote):
            pass
    warned = [record for record in caplog.records if "plaintext" in record.getMessage()]
    assert len(warned) == 1 and "kinesis client" in warned[0].getMessage()
    # another host is not allowed by the list
    with pytest.raises(ConfigurationError):
        boto3_client("kinesis", region_name="eu-west-1", endpoint_url=f"http://{host}x:4566")


@pytest.mark.parametrize(
    "variable", ["AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL"], ids=["per-service", "global"]
)
async def test_an_endpoint_without_its_scheme_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # botocore raises a bare ValueError("Invalid endpoint: ...") here; a command printed it as
    # a traceback and exited 1
    monkeypatch.setenv(variable, "127.0.0.1:4567")
    with pytest.raises(ConfigurationError, match="AWS_ENDPOINT_URL_KINESIS") as raised:
        boto3_client("kinesis", region_name="us-east-1")
    assert "127.0.0.1:4567" in str(raised.value)
    with pytest.raises(ConfigurationError, match="http://"):
        async with aiobotocore_client("kinesis", region_name="us-east-1"):
            pass


def test_a_profile_that_does_not_exist_is_a_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, no_region: None
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(ConfigurationError, match="no-such-profile"):
        boto3_client("kinesis")


async def test_an_unusable_region_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="us east"):
        async with aiobotocore_client("kinesis", region_name="us east"):
            pass


async def test_errors_inside_the_client_block_are_not_mapped() -> None:
    # only building the client is configuration; the caller's own ValueError passes through
    with pytest.raises(ValueError, match="the caller's"):
        async with aiobotocore_client("kinesis", region_name="us-east-1"):
            raise ValueError("the caller's")


async def test_an_unusable_endpoint_is_named_without_its_user_info(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore's "Invalid endpoint: <url>" quoted the URL whole, password included
    endpoint = "https://admin:pw-secret@kinesis bad host:443"
    with pytest.raises(ConfigurationError) as raised:
        boto3_client("kinesis", region_name="us-east-1", endpoint_url=endpoint)
    assert "pw-secret" not in str(raised.value) and "https://***@kinesis bad host:443" in str(raised.value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", "https://admin:pw-secret@kinesis bad host")
    with pytest.raises(ConfigurationError) as raised:
        async with aiobotocore_client("kinesis", region_name="us-east-1"):
            pytest.fail("the client was handed out")
    assert "pw-secret" not in str(raised.value) and "admin" not in str(raised.value)
