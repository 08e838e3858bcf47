"""Client configuration shared by the Kafka producer and consumer: brokers and security.

Both sides of Shardline talk to the same clusters with the same credentials, so how a
``KafkaClientConfig`` becomes a confluent-kafka configuration dict lives here, once.

Security is one of four frozen values: :class:`Plaintext` (the local broker), :class:`Tls`,
:class:`Scram` (MSK's SASL/SCRAM-SHA-512 over TLS) and :class:`MskIam` (MSK IAM over
SASL/OAUTHBEARER, signed by aws-msk-iam-sasl-signer-python).  TLS certificate and hostname
verification are on unless switched off explicitly.  Passwords and tokens are kept out of
every ``repr``; no ``debug`` contexts are set by default (librdkafka's ``debug=all`` would
log SASL exchanges).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias, TypeVar

from shardline.errors import AuthenticationError, ConfigurationError
from shardline.kafka_oauth import OAUTH_CB, TokenFailureHandler, supervised_oauth, token_failure_logger
from shardline.lograte import RepeatedRecords

_Client = TypeVar("_Client")

__all__ = [
    "EVENT_ID_HEADER",
    "LIBRDKAFKA_LOGGER",
    "KafkaClientConfig",
    "KafkaSecurity",
    "MskIam",
    "MskIamTokenProvider",
    "Plaintext",
    "Scram",
    "Tls",
    "TlsSettings",
    "TokenSigner",
    "refuse_kafka_user_info",
    "refuse_security_keys",
]

EVENT_ID_HEADER: Final = "shardline-event-id"
"""Header carrying a :class:`~shardline.records.Record`'s ``event_id`` from producer to consumer."""


def _librdkafka_kind(record: logging.LogRecord) -> tuple[object, ...]:
    """A librdkafka line's kind: its level, facility and client (confluent-kafka logs
    ``"%s [%s] %s"`` with the facility, the client's name and the text)."""
    args = record.args if isinstance(record.args, tuple) else ()
    return (record.levelno, *args[:2])


LIBRDKAFKA_LOGGER: Final = logging.getLogger("shardline.librdkafka")
"""Where every client Shardline builds sends librdkafka's own log lines (the ``logger``
property), each kind at most once a minute: written to stderr by librdkafka itself, they
bypassed ``--log-format`` and, with the brokers down, came about twenty a second."""
LIBRDKAFKA_LOGGER.addFilter(RepeatedRecords(_librdkafka_kind))

MSK_TOKEN_LIFETIME_SECONDS: Final = 900
"""Lifetime of a token signed by aws-msk-iam-sasl-signer-python (SigV4 presigned URL)."""

_SECURITY_KEY_PREFIXES: Final = (
    "security.",
    "sasl.",
    "ssl.",
    "ssl_",
    "enable.ssl.",
    "enable.sasl.",
    "https.",
    "oauth",
)

_PARTITIONER_KEYS: Final = frozenset({"partitioner", "partitioner_cb"})
"""librdkafka's properties that choose a keyed message's partition (CONFIGURATION.md).

``sticky.partitioning.linger.ms`` is not one of them: it only groups messages *without* a
key (which go to a random partition either way), as the Java client's sticky partitioner
does, and stays tunable."""

_NESTED_CONFIG_KEY: Final = "default.topic.config"
"""The one key whose value confluent-kafka merges into the configuration it belongs to."""


def refuse_kafka_user_info(uri: str) -> None:
    """Refuse a ``kafka://user:password@...`` URI without repeating its user info.

    A ``kafka://`` URI takes no credentials: its authority is the bootstrap list, handed to
    librdkafka as it is, so ``user:password@`` became part of a broker's name and went into
    every librdkafka log line and error about that broker, the password with it.
    """
    from urllib.parse import urlsplit

    from shardline.endpoints import redact_url

    if "@" in urlsplit(uri).netloc:
        raise ConfigurationError(
            f"a kafka:// URI takes no user name or password ({redact_url(uri)!r}): give the "
            "brokers alone and choose ?security=tls or msk-iam (SCRAM credentials are set in "
            "code, KafkaClientConfig(security=Scram(...)))"
        )


def refuse_security_keys(properties: Mapping[str, Any], where: str) -> None:
    """Refuse TLS/SASL properties in a pass-through dict: the security value sets them, once.

    Every pass-through dict (``KafkaClientConfig.extra``, the producer's and consumer's
    ``librdkafka``) is checked the same way, so none of them can turn an MSK IAM or SCRAM
    client into plaintext or switch certificate verification off after the security
    setting was applied.  Keys are compared case-insensitively.

    ``debug`` is refused too: its contexts (``security``, ``all``) log SASL exchanges and
    broker payloads.  So are ``partitioner`` and ``partitioner_cb``: the producer's
    ``KafkaProducerConfig.partitioner`` owns the key-to-partition rule (the Java client's by
    default), and a pass-through that set it sent keys to other partitions than every other
    producer of the topic.

    ``default.topic.config`` is checked as a dict of its own: confluent-kafka merges that
    nested dict into the top-level configuration, over the keys already there, so
    ``{"default.topic.config": {"enable.ssl.certificate.verification": False}}`` switched
    verification off (or a nested ``security.protocol`` downgraded the client) past a check
    of the top-level keys alone; a nested ``partitioner`` likewise replaced the producer's.
    """
    for key, value in properties.items():
        normalised = str(key).strip().lower()
        if normalised == "debug":
            raise ConfigurationError(f"librdkafka debug output is not enabled through {where}")
        if normalised in _PARTITIONER_KEYS:
            raise ConfigurationError(
                f"set the partitioner through KafkaProducerConfig.partitioner, not {where}"
            )
        if normalised.startswith(_SECURITY_KEY_PREFIXES):
            raise ConfigurationError(f"set {key!r} through the security setting, not {where}")
        if normalised == _NESTED_CONFIG_KEY:
            if not isinstance(value, Mapping):
                raise ConfigurationError(f"{key!r} in {where} must be a dict of properties")
            refuse_security_keys(value, f"{where}[{key!r}]")


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """Where TLS trust and client certificates come from.

    ``ca_location`` ``None`` uses the system trust store (MSK's certificates are publicly
    trusted).  ``verify`` and ``verify_hostname`` default on; switching them off is for
    private test clusters only.
    """

    ca_location: str | None = None
    certificate_location: str | None = None
    key_location: str | None = None
    key_password: str | None = field(default=None, repr=False)
    verify: bool = True
    verify_hostname: bool = True

    def to_confluent(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "enable.ssl.certificate.verification": self.verify,
            "ssl.endpoint.identification.algorithm": "https" if self.verify_hostname else "none",
        }
        if self.ca_location is not None:
            conf["ssl.ca.location"] = self.ca_location
        if self.certificate_location is not None:
            conf["ssl.certificate.location"] = self.certificate_location
        if self.key_location is not None:
            conf["ssl.key.location"] = self.key_location
        if self.key_password is not None:
            conf["ssl.key.password"] = self.key_password
        return conf


@dataclass(frozen=True, slots=True)
class Plaintext:
    """No encryption, no authentication: the local broker only."""

    def to_confluent(self) -> dict[str, Any]:
        return {"security.protocol": "PLAINTEXT"}


@dataclass(frozen=True, slots=True)
class Tls:
    """TLS, optionally with a client certificate (MSK's mutual-TLS authentication)."""

    tls: TlsSettings = field(default_factory=TlsSettings)

    def to_confluent(self) -> dict[str, Any]:
        return {"security.protocol": "SSL", **self.tls.to_confluent()}


@dataclass(frozen=True, slots=True)
class Scram:
    """SASL/SCRAM over TLS, as MSK serves it (port 9096, secret named ``AmazonMSK_*``)."""

    username: str
    password: str = field(repr=False)
    mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = "SCRAM-SHA-512"
    tls: TlsSettings = field(default_factory=TlsSettings)

    def __post_init__(self) -> None:
        if not self.username or not self.password:
            raise ConfigurationError("SCRAM needs a non-empty username and password")
        if self.mechanism not in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            raise ConfigurationError(f"unknown SCRAM mechanism {self.mechanism!r}")

    def to_confluent(self) -> dict[str, Any]:
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": self.mechanism,
            "sasl.username": self.username,
            "sasl.password": self.password,
            **self.tls.to_confluent(),
        }


TokenSigner: TypeAlias = Callable[[str], tuple[str, int]]
"""Signs a token for a region: returns ``(token, expiry as epoch milliseconds)``.

That is the contract of ``MSKAuthTokenProvider.generate_auth_token`` and its siblings.
"""


def _default_region() -> str | None:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    import botocore.session  # deferred: only MSK IAM needs botocore's profile resolution

    resolved: str | None = botocore.session.Session().get_config_variable("region")
    return resolved


def _signer_for(profile: str | None, role_arn: str | None) -> TokenSigner:
    """The aws-msk-iam-sasl-signer-python entry point matching how credentials are found."""
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    if role_arn is not None:
        return lambda region: MSKAuthTokenProvider.generate_auth_token_from_role_arn(region, role_arn)
    if profile is not None:
        return lambda region: MSKAuthTokenProvider.generate_auth_token_from_profile(region, profile)
    # The default chain honours AWS_PROFILE, environment credentials, instance and task roles.
    return lambda region: MSKAuthTokenProvider.generate_auth_token(region)


class _Signing:
    """One call of the signer, on a daemon thread of its own, that callers wait for with a bound.

    The signer resolves credentials and may call STS: botocore waits up to 60 s per attempt
    with retries, and a ``credential_process`` has no bound at all.  Called inline, that held
    whoever asked for a token -- a client's constructor (on the event loop) or librdkafka's
    background thread in ``oauth_cb`` -- for as long as it took.  A call that outlives its
    callers still finishes here; its answer serves the next request.
    """

    __slots__ = ("done", "error", "result")

    def __init__(self, signer: TokenSigner, region: str) -> None:
        self.done = threading.Event()
        self.result: tuple[object, object] | None = None
        self.error: BaseException | None = None
        thread = threading.Thread(
            target=self._run, args=(signer, region), name="shardline-msk-iam-sign", daemon=True
        )
        thread.start()

    def _run(self, signer: TokenSigner, region: str) -> None:
        try:
            self.result = signer(region)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, who raises it typed
            self.error = exc
        finally:
            self.done.set()


class MskIamTokenProvider:
    """OAUTHBEARER tokens for MSK IAM, cached and re-signed before they expire.

    librdkafka asks for a token through ``oauth_cb`` when it connects and again at about 80%
    of the token's lifetime.  The signer reports expiry in *milliseconds* since the epoch;
    ``oauth_cb`` must answer in *seconds* — mixing them up makes librdkafka believe the
    token lives for millennia and never refresh it.  A cached token is reused only while
    more than ``refresh_margin_s`` of its life remains, so one provider can serve several
    clients and a refresh request always gets a token good for most of its lifetime.

    Signing is bounded by ``sign_timeout_s`` (librdkafka's own wait for a first token is
    10 s): a signer that takes longer (STS out of reach, a credential process that hangs) is an
    :class:`AuthenticationError` then, while it goes on in the background; the next request
    waits for that same call again rather than starting another, and uses its token.

    Thread-safe: librdkafka calls ``oauth_cb`` from whichever thread polls the client.
    """

    __slots__ = (
        "_clock",
        "_expiry_s",
        "_lock",
        "_refresh_margin_s",
        "_sign_timeout_s",
        "_signer",
        "_signing",
        "_token",
        "region",
    )

    def __init__(
        self,
        region: str | None = None,
        *,
        profile: str | None = None,
        role_arn: str | None = None,
        signer: TokenSigner | None = None,
        refresh_margin_s: float = 300.0,
        sign_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        resolved = region or _default_region()
        if not resolved:
            raise ConfigurationError("MSK IAM needs a region (argument, AWS_REGION or the AWS profile)")
        if not 0 <= refresh_margin_s < MSK_TOKEN_LIFETIME_SECONDS:
            raise ConfigurationError(f"refresh_margin_s must be in 0..{MSK_TOKEN_LIFETIME_SECONDS}")
        if isinstance(sign_timeout_s, bool) or not isinstance(sign_timeout_s, int | float):
            raise ConfigurationError("sign_timeout_s must be a number of seconds")
        if not 0 < sign_timeout_s < math.inf:
            raise ConfigurationError("sign_timeout_s must be a positive finite number of seconds")
        self._sign_timeout_s = float(sign_timeout_s)
        self._signing: _Signing | None = None
        self.region = resolved
        self._signer = signer if signer is not None else _signer_for(profile, role_arn)
        self._refresh_margin_s = refresh_margin_s
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expiry_s = 0.0

    def __repr__(self) -> str:
        return f"MskIamTokenProvider(region={self.region!r})"

    def token(self) -> tuple[str, float]:
        """A valid token and its expiry in epoch *seconds*, re-signed when close to expiry."""
        with self._lock:
            if self._token is not None and self._clock() < self._expiry_s - self._refresh_margin_s:
                return self._token, self._expiry_s
            signing = self._signing
            if signing is None:  # concurrent callers wait for one call of the signer
                signing = self._signing = _Signing(self._signer, self.region)
        # Waited for outside the lock: each caller waits the bound at most, whoever else waits.
        if not signing.done.wait(self._sign_timeout_s):
            raise AuthenticationError(
                f"signing an MSK IAM token took longer than {self._sign_timeout_s:g} s",
                service="kafka",
                retriable=True,
            )
        with self._lock:
            if self._signing is signing:
                self._signing = None  # answered: the next request that needs a token signs anew
            if signing.error is not None or signing.result is None:
                # The signer's own message may quote credential sources; keep only the type.
                raise AuthenticationError(
                    f"could not sign an MSK IAM token ({type(signing.error).__name__})", service="kafka"
                ) from None
            token, expiry_ms = signing.result
            expiry_s = self._checked_expiry(token, expiry_ms)
            assert isinstance(token, str)  # checked just now
            if self._token is None or expiry_s >= self._expiry_s:  # never replace a newer token
                self._token, self._expiry_s = token, expiry_s
            return self._token, self._expiry_s

    def _checked_expiry(self, token: object, expiry_ms: object) -> float:
        """The signer's expiry in epoch seconds, once its answer is known to be usable.

        An answer librdkafka cannot use must not be cached: a token that is not a non-empty
        string, or an expiry that is not a number, made ``oauth_cb`` fail inside librdkafka
        with nothing but "OAuth token not set" (or a bare ``TypeError``); a NaN expiry was
        cached for good (no comparison with it is true, so it was never re-signed); an expiry
        already past -- the usual sign of a signer answering in seconds, not milliseconds --
        had every call sign again and librdkafka refuse each token.  Each is an
        :class:`AuthenticationError` naming what was wrong, never the token.
        """
        if not isinstance(token, str) or not token:
            problem = "a token that is not a non-empty string"
        elif isinstance(expiry_ms, bool) or not isinstance(expiry_ms, int | float):
            problem = f"an expiry that is not a number ({type(expiry_ms).__name__})"
        elif not math.isfinite(expiry_ms) or expiry_ms / 1000.0 <= self._clock():
            problem = "an expiry that is not in the future (epoch milliseconds expected)"
        else:
            return expiry_ms / 1000.0
        raise AuthenticationError(f"the MSK IAM signer returned {problem}", service="kafka")

    def oauth_cb(self, _oauthbearer_config: str | None = None) -> tuple[str, float]:
        """confluent-kafka's ``oauth_cb``: ``(token, expiry in epoch seconds)``."""
        return self.token()


@dataclass(frozen=True, slots=True)
class MskIam:
    """MSK IAM access control: SASL/OAUTHBEARER over TLS (port 9098)."""

    token_provider: MskIamTokenProvider
    tls: TlsSettings = field(default_factory=TlsSettings)

    @classmethod
    def for_region(cls, region: str | None = None, **provider_options: Any) -> MskIam:
        """Build with a default :class:`MskIamTokenProvider` (region from AWS config if omitted)."""
        return cls(MskIamTokenProvider(region, **provider_options))

    def to_confluent(self) -> dict[str, Any]:
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "OAUTHBEARER",
            "oauth_cb": self.token_provider.oauth_cb,
            **self.tls.to_confluent(),
        }


KafkaSecurity: TypeAlias = Plaintext | Tls | Scram | MskIam


SECURITY_NAMES: Final = ("plaintext", "tls", "msk-iam")
"""The security settings a command line (or a ``?security=`` URI option) can name."""


def security_named(
    name: str, bootstrap_servers: str, logger: logging.Logger, what: str = "kafka:// in plaintext"
) -> KafkaSecurity:
    """The security value ``name`` names, for the commands that take it as a word.

    Plaintext to a host that is not loopback is allowed (a broker inside a private network)
    but logged as a warning naming ``what``, so a forgotten ``?security=tls`` is noticed.
    """
    if name == "tls":
        return Tls()
    if name == "msk-iam":
        return MskIam.for_region()
    if name != "plaintext":
        raise ConfigurationError(f"Kafka security must be plaintext, tls or msk-iam, got {name!r}")
    from shardline.endpoints import warn_if_plaintext_remote

    warn_if_plaintext_remote(logger, what, bootstrap_servers)
    return Plaintext()


@dataclass(frozen=True, slots=True)
class KafkaClientConfig:
    """Which cluster to talk to, and how to authenticate.

    ``extra`` passes further librdkafka properties through unchanged (tuning such as
    ``socket.keepalive.enable``); security properties are refused there so the security
    value is the one place they are set.

    ``consumer_close_timeout_s`` bounds how long closing any consumer built from this
    configuration may take.  confluent-kafka's ``Consumer.close()`` has no timeout of its own:
    with the brokers gone it waits for librdkafka's broker threads and, for a group member,
    for the last commit and the leave-group request (tens of seconds were seen).  Past the
    bound the close is abandoned on its own daemon thread (``consumers._kafka_thread``).
    """

    bootstrap_servers: str
    security: KafkaSecurity = field(default_factory=Plaintext)
    client_id: str = "shardline"
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    consumer_close_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.bootstrap_servers or not self.bootstrap_servers.strip():
            raise ConfigurationError("bootstrap_servers must name at least one broker")
        if "@" in self.bootstrap_servers:
            # no broker address holds one; "user:password@host:port" went to librdkafka as a
            # broker name, which it logs and quotes in its errors (and into this repr)
            raise ConfigurationError(
                "bootstrap_servers takes HOST:PORT entries without user info (an '@' was given); "
                "credentials are set through security=, e.g. Scram(username, password)"
            )
        timeout = self.consumer_close_timeout_s
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
            raise ConfigurationError("consumer_close_timeout_s must be a positive finite number of seconds")
        if not isinstance(self.security, Plaintext | Tls | Scram | MskIam):
            raise ConfigurationError(f"unknown security setting {type(self.security).__name__}")
        refuse_security_keys(self.extra, "extra")
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    def sign_first_token(self) -> None:
        """Under MSK IAM, sign the token a new client will ask for, before the client is built.

        confluent-kafka's client constructors call ``oauth_cb`` on librdkafka's own thread and
        wait up to 10 s for a token: a signer failing there (expired credentials, STS out of
        reach) made every constructor wait out those 10 s and then raise an untyped
        ``KafkaException`` ("OAuth token not set"; the consumer even a ``SystemError``), the
        :class:`AuthenticationError` naming the cause lost.  Signed here, the failure raises at
        once; the token is cached, so the client's first ``oauth_cb`` does not sign again.
        Other security settings have nothing to sign.
        """
        if isinstance(self.security, MskIam):
            self.security.token_provider.token()

    def new_client(
        self,
        factory: Callable[[dict[str, Any]], _Client],
        conf: Mapping[str, Any] | None = None,
        *,
        on_token_failure: TokenFailureHandler | None = None,
        on_token: Callable[[], None] | None = None,
    ) -> _Client:
        """A confluent-kafka client (``Producer``, ``Consumer``, ``AdminClient``) built by
        ``factory`` from ``conf`` (by default :meth:`to_confluent`): the one way every client is
        built, so each gets its MSK IAM token signed first (:meth:`sign_first_token`) and a
        construction librdkafka refuses (an unknown property, no token) becomes the Shardline
        error of its code instead of an untyped ``KafkaException``.

        Its ``oauth_cb`` is wrapped (:func:`shardline.kafka_oauth.supervised_oauth`): a later
        token refresh that fails reaches ``on_token_failure`` as an
        :class:`AuthenticationError` (by default a warning, each kind once a minute), where librdkafka on
        its own would drop the exception and report only "OAuth callback raised exception".
        ``on_token`` runs after each token handed out."""
        from shardline.errormap import map_kafka_errors

        self.sign_first_token()
        built = dict(conf) if conf is not None else self.to_confluent()
        if OAUTH_CB in built:
            report = on_token_failure if on_token_failure is not None else token_failure_logger()
            built[OAUTH_CB] = supervised_oauth(built[OAUTH_CB], report, on_token)
        with map_kafka_errors():
            return factory(built)

    def to_confluent(self) -> dict[str, Any]:
        """The confluent-kafka configuration dict (it may hold secrets: never log it)."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "logger": LIBRDKAFKA_LOGGER,
            **self.security.to_confluent(),
            **self.extra,
        }
