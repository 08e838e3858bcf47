"""Partition-key strategies: how a producer picks the key (and optional hash key) of a record.

A strategy is any callable ``strategy(value) -> str | Key``: it receives what the caller
passed to ``send()`` (an object before serialisation, a mapping, a :class:`~shardline.Record`
or raw bytes) and returns a partition key, or a :class:`Key` that also carries an explicit
hash key.  Strategies are plain callables so they compose by wrapping: ``salted(field("device_id"),
8)`` spreads each device over eight keys, ``fallback(field("device_id"), random())`` keys the
records that lack the field randomly.

Nothing here knows about Kinesis or Kafka.  Strategies that want the destination's hash-key
ranges (round robin over shards) implement :class:`RangeAware`; the Kinesis producer calls
``bind_ranges`` whenever its shard map changes, and a Kafka producer may ignore the explicit
hash key entirely.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, TypeAlias, runtime_checkable

from shardline.errors import ConfigurationError, InvalidPartitionKeyError, ShardlineError
from shardline.limits import HASH_KEY_MAX

__all__ = [
    "Key",
    "KeyStrategy",
    "RangeAware",
    "call",
    "constant",
    "fallback",
    "field",
    "random",
    "resolve",
    "round_robin",
    "salted",
]


class Key(NamedTuple):
    """A partition key plus an optional explicit hash key that overrides its MD5 route."""

    partition_key: str
    explicit_hash_key: int | None = None


KeyStrategy: TypeAlias = Callable[[Any], "str | Key"]
"""A callable that maps the value given to ``send()`` to a partition key or a :class:`Key`."""


@runtime_checkable
class RangeAware(Protocol):
    """A strategy that wants the destination's hash-key ranges (inclusive ``(start, end)`` pairs)."""

    def bind_ranges(self, ranges: Sequence[tuple[int, int]]) -> None: ...


def resolve(strategy: KeyStrategy, value: Any) -> Key:
    """Apply ``strategy`` and normalise its answer to a :class:`Key`."""
    try:
        answer = strategy(value)
    except ShardlineError:
        raise
    except Exception as exc:
        raise InvalidPartitionKeyError(
            f"key strategy raised {type(exc).__name__} on a {type(value).__name__}"
        ) from exc
    if isinstance(answer, Key):
        return answer
    if isinstance(answer, str):
        return Key(answer)
    raise InvalidPartitionKeyError(
        f"key strategy returned {type(answer).__name__}, expected str or producers.keys.Key"
    )


class _Field:
    """The value of one field of a mapping, or one attribute of an object, as a string."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, value: Any) -> str:
        name = self._name
        if isinstance(value, Mapping):
            try:
                found = value[name]
            except KeyError:
                raise InvalidPartitionKeyError(f"record has no field {name!r} to key on") from None
        else:
            found = getattr(value, name, None)
            if found is None:
                raise InvalidPartitionKeyError(f"record has no attribute {name!r} to key on")
        if found is None:
            raise InvalidPartitionKeyError(f"field {name!r} is None; cannot key on it")
        if isinstance(found, str):
            return found
        return _key_text(name, found)

    def __repr__(self) -> str:
        return f"keys.field({self._name!r})"


def _key_text(name: str, found: object) -> str:
    """A field value that is not a str as its key, or why it cannot be one.

    ``str()`` gave Python's own spelling of anything: ``b'dev'`` for bytes, ``True``, ``{'a': 1}``
    for a nested object, ``<bound method ...>`` for a method (an attribute of a value that was
    not the expected record).  Such a key differs from the one any other writer of the stream
    computes, so it silently splits a device's records over shards.  Bytes are their UTF-8
    text; integers and finite floats their usual decimal form; a value whose type spells
    itself (``__str__``: UUID, Decimal, datetime, an enum) that spelling; anything else is the
    record's typed error.
    """
    if isinstance(found, bytes | bytearray | memoryview):
        try:
            return bytes(found).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPartitionKeyError(f"field {name!r} holds bytes that are not UTF-8") from None
    if isinstance(found, bool):
        raise InvalidPartitionKeyError(
            f"field {name!r} is of type bool, not text or a number; cannot key on it"
        )
    if isinstance(found, int):
        return int.__str__(found)
    if isinstance(found, float):
        if not math.isfinite(found):
            raise InvalidPartitionKeyError(f"field {name!r} is {found}; cannot key on it")
        return float.__repr__(found)
    kind = type(found).__name__
    if isinstance(found, Mapping | Collection) or callable(found) or type(found).__str__ is object.__str__:
        raise InvalidPartitionKeyError(
            f"field {name!r} is of type {kind}, not text or a number; cannot key on it"
        )
    return str(found)


def field(name: str) -> KeyStrategy:
    """Key each record by one of its fields (mapping item or attribute), e.g. ``"device_id"``."""
    if not name:
        raise ConfigurationError("field name must not be empty")
    return _Field(name)


class _Random:
    """A fresh random key per record: spreads load evenly, gives up any per-key order."""

    __slots__ = ()

    def __call__(self, value: Any) -> str:
        # 16 random hex chars; os.urandom is fast and needs no seeding.
        return os.urandom(8).hex()

    def __repr__(self) -> str:
        return "keys.random()"


def random() -> KeyStrategy:
    """A random partition key for every record (uniform spread, no ordering)."""
    return _Random()


def _even_ranges(count: int) -> list[tuple[int, int]]:
    """``count`` equal slices of the 128-bit key space, as a freshly created stream has them."""
    width = (HASH_KEY_MAX + 1) // count
    ranges = [(i * width, (i + 1) * width - 1) for i in range(count)]
    ranges[-1] = (ranges[-1][0], HASH_KEY_MAX)
    return ranges


class _RoundRobin:
    """Cycles over hash-key ranges, pinning each record to one with an explicit hash key.

    The explicit hash key is each range's midpoint; the partition key is a short constant
    label (Kinesis requires one, and consumers see it).
    """

    __slots__ = ("_cycle", "_label")

    def __init__(self, ranges: Sequence[tuple[int, int]], label: str) -> None:
        self._label = label
        self._cycle: Iterator[Key] = iter(())
        self.bind_ranges(ranges)

    def bind_ranges(self, ranges: Sequence[tuple[int, int]]) -> None:
        if not ranges:
            raise ConfigurationError("round_robin needs at least one hash-key range")
        for start, end in ranges:
            if not 0 <= start <= end <= HASH_KEY_MAX:
                raise ConfigurationError("round_robin ranges must lie within 0..2**128-1")
        keys = [Key(f"{self._label}-{i}", (start + end) // 2) for i, (start, end) in enumerate(ranges)]
        self._cycle = itertools.cycle(keys)

    def __call__(self, value: Any) -> Key:
        return next(self._cycle)

    def __repr__(self) -> str:
        return f"keys.round_robin(label={self._label!r})"


def round_robin(ranges: int | Sequence[tuple[int, int]] = 1, *, label: str = "rr") -> KeyStrategy:
    """Spread records evenly over shards, one after another, through explicit hash keys.

    ``ranges`` is either a count (equal slices of the key space, as a new stream has them) or
    the inclusive hash-key ranges of the open shards.  A producer that knows its shard map
    rebinds the ranges whenever shards split or merge.
    """
    if isinstance(ranges, int):
        if ranges < 1:
            raise ConfigurationError("round_robin needs a positive number of ranges")
        return _RoundRobin(_even_ranges(ranges), label)
    return _RoundRobin(list(ranges), label)


class _Salted:
    """Appends a rotating suffix to a key so one hot key spreads over ``buckets`` keys.

    Only keys in ``hot_keys`` are salted when that set is given; per-key order is lost for
    salted keys (their records travel through different shards).
    """

    __slots__ = ("_buckets", "_counter", "_hot", "_inner", "_separator")

    def __init__(
        self, inner: KeyStrategy, buckets: int, hot_keys: frozenset[str] | None, separator: str
    ) -> None:
        self._inner = inner
        self._buckets = buckets
        self._hot = hot_keys
        self._separator = separator
        self._counter = itertools.count()

    def bind_ranges(self, ranges: Sequence[tuple[int, int]]) -> None:
        if isinstance(self._inner, RangeAware):
            self._inner.bind_ranges(ranges)

    def __call__(self, value: Any) -> Key:
        key = resolve(self._inner, value)
        if self._hot is not None and key.partition_key not in self._hot:
            return key
        salt = next(self._counter) % self._buckets
        return Key(f"{key.partition_key}{self._separator}{salt}", key.explicit_hash_key)

    def __repr__(self) -> str:
        return f"keys.salted({self._inner!r}, buckets={self._buckets})"


def salted(
    inner: KeyStrategy,
    buckets: int,
    *,
    hot_keys: Iterable[str] | None = None,
    separator: str = "#",
) -> KeyStrategy:
    """Spread each key (or only ``hot_keys``) over ``buckets`` suffixed keys, e.g. ``dev-42#0..7``."""
    if buckets < 1:
        raise ConfigurationError("salted needs at least one bucket")
    hot = frozenset(hot_keys) if hot_keys is not None else None
    return _Salted(inner, buckets, hot, separator)


class _Fallback:
    """The first strategy that yields a key wins; a strategy declines by raising a validation error."""

    __slots__ = ("_strategies",)

    def __init__(self, strategies: tuple[KeyStrategy, ...]) -> None:
        self._strategies = strategies

    def bind_ranges(self, ranges: Sequence[tuple[int, int]]) -> None:
        for strategy in self._strategies:
            if isinstance(strategy, RangeAware):
                strategy.bind_ranges(ranges)

    def __call__(self, value: Any) -> Key:
        last: InvalidPartitionKeyError | None = None
        for strategy in self._strategies:
            try:
                return resolve(strategy, value)
            except InvalidPartitionKeyError as exc:
                last = exc
        assert last is not None
        raise last

    def __repr__(self) -> str:
        return f"keys.fallback{self._strategies!r}"


def fallback(*strategies: KeyStrategy) -> KeyStrategy:
    """Try ``strategies`` in order; e.g. ``fallback(field("device_id"), random())``."""
    if not strategies:
        raise ConfigurationError("fallback needs at least one strategy")
    return _Fallback(strategies)


class _Constant:
    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self, value: Any) -> str:
        return self._key

    def __repr__(self) -> str:
        return f"keys.constant({self._key!r})"


def constant(key: str) -> KeyStrategy:
    """The same key for every record (total order on one shard; mostly for tests and salting)."""
    if not key:
        raise ConfigurationError("constant key must not be empty")
    return _Constant(key)


def call(function: Callable[[Any], str | Key]) -> KeyStrategy:
    """Use any callable as a strategy (documents intent; a bare callable works as well)."""
    if not callable(function):
        raise ConfigurationError("call() needs a callable")
    return function
