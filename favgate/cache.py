"""A small bounded cache, least recently used out first, with an optional time to live;
and ``Lookup``, which loads into one and lets concurrent misses of a key share one load.

Used below the resolvers to spare the database the lookups every request repeats: the
caller of a token and the instance of a name (with a TTL, so revocations and status
changes still take effect) and the chat of a message (without one: a message never moves
to another chat). The caches hold plain values; the only tasks are loads in flight, kept
no longer than they run, so nothing outlives its event loop. Each ``Storage`` owns its
own, never a module-global one.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, Literal, TypeAlias, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class _Miss(enum.Enum):
    MISS = enum.auto()


# What ``get`` answers for an absent or expired key: a value of its own, because None is
# a value worth caching (an unknown token, a missing instance).
MISS = _Miss.MISS
Miss: TypeAlias = Literal[_Miss.MISS]


class LruCache(Generic[K, V]):
    """At most ``max_entries`` values, each forgotten ``ttl`` seconds after it was stored
    (never, when ``ttl`` is None; at once, when it is 0)."""

    def __init__(
        self,
        max_entries: int,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries <= 0:
            raise ValueError("max_entries must be positive")
        if ttl is not None and ttl < 0:
            raise ValueError("ttl must not be negative")
        self._max_entries = max_entries
        self._ttl = math.inf if ttl is None else ttl
        self._clock = clock
        # key -> (expiry on the clock, value); the least recently used first.
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | Miss:
        entry = self._entries.get(key)
        if entry is None:
            return MISS
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return MISS
        self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        if self._ttl == 0:
            return  # caching is off: storing would only cost memory
        now = self._clock()
        self._entries[key] = (now + self._ttl, value)
        self._entries.move_to_end(key)
        self._drop_expired(now)
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def _drop_expired(self, now: float) -> None:
        """Drop the least recently used entries while they have expired.

        Without it, keys asked for once (a new chat each request) would stay until
        ``max_entries`` of them pushed each other out: tens of thousands of dead values
        that every full garbage collection walks, in a process that otherwise holds a
        few hundred live ones. An expired entry behind a live one goes when it reaches
        the front, or when it is asked for.
        """
        if self._ttl == math.inf:
            return
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            if entries[oldest][0] > now:
                return
            del entries[oldest]

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class Lookup(Generic[K, V]):
    """``load(key)``, remembered in ``cache``. Concurrent misses of one key share one load.

    Without that, when a busy key expires every request in flight at that moment misses
    and sends its own query: a stampede, once per TTL, of as many queries as there are
    concurrent requests. The shared load runs as a task of its own, so a caller that is
    cancelled (its client went away) cancels neither the load nor the other callers.
    """

    def __init__(self, cache: LruCache[K, V], load: Callable[[K], Awaitable[V]]) -> None:
        self._cache = cache
        self._load = load
        self._loading: dict[K, asyncio.Task[V]] = {}
        # Bumped by ``forget``: a load that started before must not store its answer.
        self._generation = 0

    async def __call__(self, key: K) -> V:
        value = self._cache.get(key)
        if value is not MISS:
            return value
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key))
            self._loading[key] = task
            task.add_done_callback(self._finished(key, self._generation))
        return await asyncio.shield(task)

    def forget(self) -> None:
        """Drop every value, and ignore the answers of loads already in flight."""
        self._cache.clear()
        self._loading.clear()
        self._generation += 1

    def _finished(self, key: K, generation: int) -> Callable[[asyncio.Task[V]], None]:
        def done(task: asyncio.Task[V]) -> None:
            if self._loading.get(key) is task:
                del self._loading[key]
            # A failed load is not remembered; retrieving the exception here spares a
            # "never retrieved" warning when every caller was cancelled.
            if task.cancelled() or task.exception() is not None:
                return
            if generation == self._generation:
                self._cache.put(key, task.result())

        return done
