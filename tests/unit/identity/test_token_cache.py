"""TokenCache: keyed by hash, bounded LRU, TTL capped by expiry, thread-safe."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from runtime.adapters.token_cache import Rejection, TokenCache, token_hash
from runtime.domain.ports import Principal
from tests.unit.identity.identity_support import FakeClock


def principal(expires_in: float, clock: FakeClock) -> Principal:
    return Principal(sub="s", expires_at=datetime.fromtimestamp(clock.now + expires_in, UTC))


def test_tokens_are_never_held_in_clear() -> None:
    cache = TokenCache()
    cache.put_valid("very-secret-token", Principal(sub="s"))
    assert "very-secret-token" not in repr(cache._entries)
    assert token_hash("very-secret-token") in cache._entries


def test_ttl_is_min_of_expiry_and_max_ttl() -> None:
    clock = FakeClock()
    cache = TokenCache(clock=clock, max_ttl_seconds=300)
    assert cache.put_valid("a", principal(60, clock)) == pytest.approx(60, abs=1e-3)
    assert cache.put_valid("b", principal(3600, clock)) == 300
    assert cache.put_valid("c", principal(-1, clock)) == 0  # already expired: not cached
    assert cache.get("c") is None
    clock.advance(61)
    assert cache.get("a") is None
    assert cache.get("b") is not None


def test_negative_entries_expire() -> None:
    clock = FakeClock()
    cache = TokenCache(clock=clock, negative_ttl_seconds=10)
    cache.put_invalid("bad", "nope")
    assert cache.get("bad") == Rejection("nope")
    clock.advance(10)
    assert cache.get("bad") is None


def test_lru_eviction_keeps_recently_used() -> None:
    cache = TokenCache(max_entries=3)
    for token in ("a", "b", "c"):
        cache.put_valid(token, Principal(sub=token))
    assert cache.get("a") is not None  # a is now most recent
    cache.put_valid("d", Principal(sub="d"))
    assert len(cache) == 3
    assert cache.get("b") is None
    assert {cache.get(t).sub for t in ("a", "c", "d")} == {"a", "c", "d"}  # type: ignore[union-attr]


def test_concurrent_use_stays_bounded() -> None:
    cache = TokenCache(max_entries=100)

    def work(offset: int) -> None:
        for i in range(500):
            cache.put_valid(f"t{offset}-{i}", Principal(sub="s"))
            cache.get(f"t{offset}-{i // 2}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 100
