"""The per-client rate limiter of every HTTP surface: hand-worked token-bucket cases."""

from __future__ import annotations

import pytest

from driftwatch.errors import ConfigError
from driftwatch.httpguard import RateLimiter, limiter_from_settings
from driftwatch.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.wait_s("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_s("a") == pytest.approx(0.5)  # empty: one token in 1/2 s
    assert limiter.wait_s("a") == pytest.approx(0.5)  # a refused request takes nothing
    clock.now += 0.25
    assert limiter.wait_s("a") == pytest.approx(0.25)  # half a token back
    clock.now += 0.25
    assert limiter.wait_s("a") == 0.0
    clock.now += 60  # a long pause refills to the burst, not beyond
    assert [limiter.wait_s("a") for _ in range(4)][-1] == pytest.approx(0.5)


def test_clients_have_their_own_buckets() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=clock)
    assert limiter.wait_s("a") == 0.0
    assert limiter.wait_s("a") == pytest.approx(1.0)
    assert limiter.wait_s("b") == 0.0
    assert limiter.clients == 2


def test_memory_is_bounded_least_recently_seen_dropped_first() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1.0, burst=1, max_clients=2, clock=clock)
    limiter.wait_s("a")
    limiter.wait_s("b")
    assert limiter.wait_s("a") > 0  # "a" seen again: now the most recent
    limiter.wait_s("c")  # drops "b"
    assert limiter.clients == 2
    assert limiter.wait_s("a") > 0  # "a" was kept (still empty)
    assert limiter.wait_s("b") == 0.0  # "b" was dropped: a fresh bucket


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=clock)
    limiter.wait_s("a")
    clock.now -= 1000
    assert limiter.wait_s("a") == pytest.approx(1.0)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"rate_per_s": 0.0, "burst": 1}, "rate_per_s"),
    ({"rate_per_s": -1.0, "burst": 1}, "rate_per_s"),
    ({"rate_per_s": float("nan"), "burst": 1}, "rate_per_s"),
    ({"rate_per_s": float("inf"), "burst": 1}, "rate_per_s"),
    ({"rate_per_s": 1.0, "burst": 0}, "burst"),
    ({"rate_per_s": 1.0, "burst": 1, "max_clients": 0}, "max_clients"),
])
def test_bad_parameters_are_named(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        RateLimiter(**kwargs)  # type: ignore[arg-type]


def test_limiter_from_settings() -> None:
    base = Settings.load(env={}, config_file=None)
    limiter = limiter_from_settings(base)
    assert limiter is not None
    assert (limiter.rate_per_s, limiter.burst, limiter.max_clients) == (
        base.http_rate_per_s, base.http_rate_burst, base.http_rate_clients)
    assert limiter_from_settings(base.replace(http_rate_per_s=0.0)) is None
    with pytest.raises(ConfigError, match="rate_per_s"):
        limiter_from_settings(base.replace(http_rate_per_s=-2.0))
    with pytest.raises(ConfigError, match="burst"):
        limiter_from_settings(base.replace(http_rate_burst=0))
