"""Slowing down key guessing: after `limit` failed authentications from one client
address within a window, that address gets 429 for the rest of the window, whatever
key it sends.

The count is shared through PostgreSQL (every API process adds to it); the block is
remembered by each process that sees the address fail, so checking it costs a
dictionary lookup on the hot path and a database write only on a failure."""

from __future__ import annotations

import math
import time

from psycopg_pool import AsyncConnectionPool

from core.errors import RateLimited
from db import Conn
from db import auth as auth_db


class FailedAuthThrottle:
    def __init__(self, *, limit: int = 20, window_seconds: float = 60.0) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._blocked_until: dict[str, float] = {}

    def check(self, client: str) -> None:
        until = self._blocked_until.get(client)
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked_until[client]
            return
        raise RateLimited(
            "Too many failed authentication attempts from this address.",
            retry_after=max(1, math.ceil(left)),
        )

    async def failed(self, pool: AsyncConnectionPool[Conn], client: str) -> None:
        async with pool.connection() as conn:
            failures, seconds_left = await auth_db.record_failure(
                conn, client=client, window_seconds=self.window_seconds
            )
        if failures >= self.limit:
            self._blocked_until[client] = time.monotonic() + max(1.0, seconds_left)
        if len(self._blocked_until) > 100_000:
            # Bounded memory under a wide attack: forget the oldest blocks.
            for key in sorted(self._blocked_until, key=self._blocked_until.__getitem__)[:50_000]:
                del self._blocked_until[key]
