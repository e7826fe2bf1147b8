"""The procrastinate app shared by the API (which defers) and the workers (which run).

It is built by a factory, never at import, and it borrows the process's psycopg pool
(``open_async(pool)``) so a job can be deferred on the caller's connection, inside the
caller's transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import procrastinate
import psycopg

from jobs import callbacks, dispatch, receipts, upkeep

# One queue per tier, so each tier can have its own worker pool.
TIER_QUEUES: tuple[str, ...] = ("vip", "premium", "standard")
MAINTENANCE_QUEUE = "maintenance"
QUEUES: tuple[str, ...] = (*TIER_QUEUES, receipts.QUEUE, callbacks.QUEUE, MAINTENANCE_QUEUE)


class Connector(procrastinate.PsycopgConnector):
    """procrastinate's connector, whose LISTEN connection (the one connection it opens
    beside the pool it borrows) goes to ``listen_conninfo`` when given: the database
    itself when the pool goes through a transaction-mode pooler."""

    def __init__(self, *, listen_conninfo: str | None = None) -> None:
        super().__init__()
        self._listen_conninfo = listen_conninfo

    @contextlib.asynccontextmanager
    async def _get_standalone_connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        if self._listen_conninfo is None:
            async with super()._get_standalone_connection() as connection:
                yield connection
            return
        async with await psycopg.AsyncConnection.connect(
            self._listen_conninfo, autocommit=True
        ) as connection:
            yield connection


def create_app(*, listen_conninfo: str | None = None) -> procrastinate.App:
    app = procrastinate.App(connector=Connector(listen_conninfo=listen_conninfo))
    dispatch.register(app)
    receipts.register(app)
    callbacks.register(app)
    upkeep.register(app, queue=MAINTENANCE_QUEUE)
    return app
