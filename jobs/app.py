"""The procrastinate app shared by the API (which defers) and the workers (which run).

It is built by a factory, never at import, and it borrows the process's psycopg pool
(``open_async(pool)``) so a job can be deferred on the caller's connection, inside the
caller's transaction.
"""

from __future__ import annotations

import procrastinate

from jobs import callbacks, dispatch, receipts, upkeep

# One queue per tier, so each tier can have its own worker pool.
TIER_QUEUES: tuple[str, ...] = ("vip", "premium", "standard")
MAINTENANCE_QUEUE = "maintenance"
QUEUES: tuple[str, ...] = (*TIER_QUEUES, receipts.QUEUE, callbacks.QUEUE, MAINTENANCE_QUEUE)


def create_app() -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector())
    dispatch.register(app)
    receipts.register(app)
    callbacks.register(app)
    upkeep.register(app, queue=MAINTENANCE_QUEUE)
    return app
