"""A bounded, thread-safe cache of token introspection results, keyed by token hash.

Introspecting a Globus token is a network round trip; a client sends the same
token on every request. The cache keeps, per SHA-256 of the token (the token
itself is never held as a key or logged):

- a valid result for at most ``min(token expiry, max_ttl)`` (5 minutes by
  default), so a revoked token stops working within ``max_ttl``;
- an invalid result for ``negative_ttl`` (10 s by default), so a flood of bad
  tokens does not turn into a flood of calls to Globus.

Entries are evicted least-recently-used past ``max_entries``. Failures to
reach Globus are never cached: the next request tries again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from runtime.domain.ports import Principal

DEFAULT_MAX_TTL_SECONDS = 300.0
DEFAULT_NEGATIVE_TTL_SECONDS = 10.0
DEFAULT_MAX_ENTRIES = 10_000


def token_hash(token: str) -> str:
    """The SHA-256 hex digest of a token: the cache key, and what logs may show."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Rejection:
    """A cached negative result: why the token was refused."""

    reason: str


CachedResult = Principal | Rejection


@dataclass(frozen=True)
class _Entry:
    result: CachedResult
    expires_at: float  # on the cache's clock (epoch seconds by default)


class TokenCache:
    """LRU cache of introspection results with per-entry expiry."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_ttl_seconds: float = DEFAULT_MAX_TTL_SECONDS,
        negative_ttl_seconds: float = DEFAULT_NEGATIVE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._max_ttl = max_ttl_seconds
        self._negative_ttl = negative_ttl_seconds
        # Wall clock: token expiry ('exp') is an epoch time, so the deadline
        # must be on the same clock.
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> CachedResult | None:
        """The live cached result for ``token``, or None (absent or expired)."""
        key = token_hash(token)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry.result

    def put_valid(self, token: str, principal: Principal) -> float:
        """Cache a valid principal; return the TTL used (0 means not cached).

        The TTL never outlives the token: ``min(expires_at - now, max_ttl)``.
        """
        now = self._clock()
        ttl = self._max_ttl
        if principal.expires_at is not None:
            ttl = min(ttl, principal.expires_at.timestamp() - now)
        if ttl <= 0:
            return 0.0
        self._store(token, _Entry(principal, now + ttl))
        return ttl

    def put_invalid(self, token: str, reason: str) -> float:
        """Cache a refusal briefly; return the TTL used."""
        if self._negative_ttl <= 0:
            return 0.0
        self._store(token, _Entry(Rejection(reason), self._clock() + self._negative_ttl))
        return self._negative_ttl

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _store(self, token: str, entry: _Entry) -> None:
        key = token_hash(token)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
