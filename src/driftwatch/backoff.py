"""Bounded exponential back-off for retries of ClickHouse and Kafka calls.

The delay before retry ``n`` (counting from 0) is ``initial_s * factor**n``, capped at
``max_s``, then scaled down by a random jitter so that many workers that failed together
do not retry together.

>>> [backoff_delay(n, initial_s=0.5, max_s=4.0) for n in range(6)]
[0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
>>> b = Backoff(initial_s=0.5, max_s=4.0, jitter=0.0)
>>> [b.next() for _ in range(5)], b.attempts
([0.5, 1.0, 2.0, 4.0, 4.0], 5)
>>> b.reset().attempts
0
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, initial_s: float, max_s: float, factor: float = 2.0) -> float:
    """Delay before retry ``attempt`` (0-based) without jitter: ``initial_s * factor**attempt``
    capped at ``max_s``.

    Parameters
    ----------
    attempt : int
        Number of failed attempts so far minus one (``>= 0``).
    initial_s, max_s : float
        First and longest delay in seconds.
    factor : float
        Growth per attempt (``>= 1``).

    Returns
    -------
    float
        Seconds to wait.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    # Cap the exponent so that huge attempt counts do not overflow a float.
    grown = initial_s * factor ** min(attempt, 64)
    return float(min(grown, max_s))


class Backoff:
    """Exponential back-off state: ``next()`` gives the next delay, ``reset()`` starts over.

    Parameters
    ----------
    initial_s : float
        First delay in seconds (``> 0``).
    max_s : float
        Longest delay in seconds (``>= initial_s``): the bound of the retry interval.
    factor : float
        Growth per failed attempt (``>= 1``).
    jitter : float
        Fraction in ``[0, 1)`` by which a delay is randomly shortened (0: none).
    seed : int, optional
        Seed of the jitter's random generator.
    """

    def __init__(
        self,
        initial_s: float = 0.2,
        max_s: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        seed: int | None = None,
    ) -> None:
        if not initial_s > 0:
            raise ValueError(f"initial_s must be > 0, got {initial_s}")
        if not max_s >= initial_s:
            raise ValueError(f"max_s must be >= initial_s ({initial_s}), got {max_s}")
        if not factor >= 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not cryptography
        self._attempts = 0

    @property
    def attempts(self) -> int:
        """Delays handed out since the last reset (= failed attempts)."""
        return self._attempts

    def next(self) -> float:
        """The delay before the next retry; each call grows the following one."""
        delay = backoff_delay(
            self._attempts, initial_s=self.initial_s, max_s=self.max_s, factor=self.factor
        )
        self._attempts += 1
        if self.jitter:
            delay *= 1.0 - self.jitter * self._rng.random()
        return delay

    def reset(self) -> Backoff:
        """Start over after a success."""
        self._attempts = 0
        return self
