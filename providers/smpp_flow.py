"""How fast the SMPP adapter submits: a window of outstanding submit_sm that gives way to
throttling, and a pacer for a messages-per-second cap."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Literal


class Window:
    """At most ``limit`` submits outstanding. Throttling halves the limit and pauses
    everyone (once per round trip: answers to submits sent before the last cut do not
    cut again); accepted submits grow it back by one per limit's worth."""

    def __init__(self, size: int, pause: float) -> None:
        self.size = size
        self.limit = size
        self._pause = pause
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._resume_at = 0.0
        self._cut_at = 0.0
        self._accepted = 0

    async def acquire(self) -> float:
        """Wait for a slot; returns the time it was taken (for ``release``). Slots go to
        waiters in arrival order: a release hands its slot to the first waiter, counted
        as taken, so the waiter does not race newcomers for it and queue again (issue
        22: with a turn's 2,000 sends behind a window of 50, that churn of futures was a
        tenth of an SMPP worker's CPU)."""
        while True:
            wait = self._resume_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if self._in_use < self.limit and not self._waiters:
                self._in_use += 1
                return time.monotonic()
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._give_back()  # handed a slot it will not use
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
            # Handed a slot by _wake. A pause that began meanwhile holds it back too.
            wait = self._resume_at - time.monotonic()
            if wait > 0:
                try:
                    await asyncio.sleep(wait)
                except asyncio.CancelledError:
                    self._give_back()
                    raise
            return time.monotonic()

    def _give_back(self) -> None:
        self._in_use -= 1
        self._wake()

    def release(self, taken_at: float, outcome: Literal["accepted", "throttled", "other"]) -> None:
        self._in_use -= 1
        now = time.monotonic()
        if outcome == "throttled" and taken_at >= self._cut_at:
            self.limit = max(1, self.limit // 2)
            self._cut_at = now
            self._resume_at = now + self._pause
            self._accepted = 0
        elif outcome == "accepted" and self.limit < self.size:
            self._accepted += 1
            if self._accepted >= self.limit:
                self.limit += 1
                self._accepted = 0
        self._wake()

    def _wake(self) -> None:
        while self._in_use < self.limit and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._in_use += 1
                waiter.set_result(None)


class Pacer:
    """Spaces submits 1/mps apart."""

    def __init__(self, mps: float | None) -> None:
        self._interval = 1.0 / mps if mps else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)
