"""Backoff for transient failures: exponential, capped, with jitter.

With ``jitter`` = 1 this is "full jitter" (a uniform draw between 0 and the exponential
delay), which spreads the retries of a batch that failed together instead of sending
them back upstream in one burst; 0 gives the plain exponential delay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    base_seconds: float = 2.0
    cap_seconds: float = 600.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.cap_seconds < self.base_seconds:
            raise ValueError("backoff needs 0 < base <= cap")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("backoff jitter must be between 0 and 1")

    def ceiling(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (1-based) without jitter."""
        return float(min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempt - 1)))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = self.ceiling(attempt)
        draw = (rng or random).random()
        return ceiling * (1.0 - self.jitter * draw)
