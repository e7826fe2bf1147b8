"""The procrastinate app shared by the API (which defers) and the workers (which run).

It is built by a factory, never at import, and it borrows the process's psycopg pool
(``open_async(pool)``) so a job can be deferred on the caller's connection, inside the
caller's transaction.
"""

from __future__ import annotations

import procrastinate

from jobs import dispatch, upkeep

QUEUES: tuple[str, ...] = ("vip", "premium", "standard")
# Upkeep runs on its own queue so a tier's backlog never delays it.
MAINTENANCE_QUEUE = "maintenance"


def create_app() -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector())
    dispatch.register(app)
    upkeep.register(app, queue=MAINTENANCE_QUEUE)
    return app
