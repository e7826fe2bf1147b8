"""Single sends that arrive together go to the database in one accept call.

An accept call costs PostgreSQL mostly per call, not per message: ~500 µs of CPU for a
message alone, ~16 µs a message in a batch of 1,000 (ops/bench, CPU per message). So a
process keeps at most ``calls`` accept calls of single sends in flight, and the sends
that arrive meanwhile wait for the next one (up to ``max_sends`` a call). Nothing waits
on a timer: a lone send goes at once, and under load a call carries what arrived during
the one before it. Each send keeps its own answer: smsgw_accept_sends_v1 decides each by
the rules of a call of its own, and a request is answered only after the call that wrote
its message committed.

A call that fails writes nothing, and each of its requests gets the error. When the
error is about the data (a value PostgreSQL would not take), its sends are tried again
one call each, so one bad send fails only its own request; a deadlock is retried once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import errors
from psycopg_pool import AsyncConnectionPool

from core.settings import Settings
from db import Conn, Row
from db import messages as messages_db

# Errors that one send's values can cause; other sends of the call are innocent.
_DATA_ERRORS = (psycopg.DataError, psycopg.IntegrityError)


class SendCoalescer:
    def __init__(
        self, pool: AsyncConnectionPool[Conn], *, task: str, calls: int, max_sends: int
    ) -> None:
        if calls < 1 or max_sends < 1:
            raise ValueError("calls and max_sends must be at least 1")
        self._pool = pool
        self._task = task
        self._calls = calls
        self._max_sends = max_sends
        self._waiting: list[tuple[Mapping[str, Any], asyncio.Future[Row]]] = []
        self._in_flight = 0
        # The flushing tasks, kept so they are not collected while running.
        self._tasks: set[asyncio.Task[None]] = set()

    async def accept(self, send: Mapping[str, Any]) -> Row:
        """``send``: a row of smsgw_send_v1 (db.messages.accept_sends); returns its
        outcome row."""
        future: asyncio.Future[Row] = asyncio.get_running_loop().create_future()
        self._waiting.append((send, future))
        if self._in_flight < self._calls:
            self._in_flight += 1
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                taken = self._waiting[: self._max_sends]
                del self._waiting[: self._max_sends]
                await self._call(taken)
        except BaseException as exc:
            if self._in_flight == 1:
                # Cancelled (the process is stopping) with sends still waiting and no
                # other call to take them: answer them rather than leave them hanging.
                waiting, self._waiting = self._waiting, []
                _fail(waiting, exc)
            raise
        finally:
            self._in_flight -= 1

    async def _call(self, taken: list[tuple[Mapping[str, Any], asyncio.Future[Row]]]) -> None:
        try:
            rows = await self._accept([send for send, _ in taken])
        except _DATA_ERRORS as exc:
            if len(taken) == 1:
                _fail(taken, exc)
                return
            for one in taken:
                await self._call([one])
            return
        except BaseException as exc:
            _fail(taken, exc)
            if not isinstance(exc, Exception):
                raise
            return
        by_id = {row["id"]: row for row in rows}
        for send, future in taken:
            if future.done():
                continue  # its request went away
            row = by_id.get(send["id"])
            if row is None:  # never: the call answers every send it is given
                future.set_exception(RuntimeError(f"no outcome for send {send['id']}"))
            else:
                future.set_result(row)

    async def _accept(self, sends: list[Mapping[str, Any]]) -> list[Row]:
        for attempt in (1, 2):
            try:
                async with self._pool.connection() as conn:
                    return await messages_db.accept_sends(conn, sends=sends, task=self._task)
            except errors.DeadlockDetected:
                # Nothing was written; the locks are taken in a fixed order, so a second
                # try does not meet the same cycle.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _fail(taken: list[tuple[Mapping[str, Any], asyncio.Future[Row]]], exc: BaseException) -> None:
    for _, future in taken:
        if future.done():
            continue
        if isinstance(exc, asyncio.CancelledError):
            future.cancel()  # the process is stopping
        else:
            future.set_exception(exc)


def for_settings(
    pool: AsyncConnectionPool[Conn], settings: Settings, *, task: str
) -> SendCoalescer | None:
    """A process's coalescer (``SMSGW_ACCEPT_CALLS`` / ``SMSGW_ACCEPT_MAX_SENDS``); None
    when calls are 0: each send in an accept call of its own."""
    if settings.accept_calls <= 0:
        return None
    return SendCoalescer(
        pool, task=task, calls=settings.accept_calls, max_sends=settings.accept_max_sends
    )
