"""The design DESIGN.md argues against, measured: one procrastinate job per message.

A scratch procrastinate task marks one message `sent`; `defer` queues one job per queued
message (all of them up front, so the drain is measured without ingest beside it, which
flatters the baseline), then ANALYZEs the jobs table as autovacuum would have in a
steady state; `worker` drains them in one process with the gateway's worker settings
(concurrency, finished jobs deleted, 1 s polling besides LISTEN/NOTIFY).

    python -m ops.bench.baseline defer --count N     (DATABASE_URL in the environment)
    python -m ops.bench.baseline worker [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

import procrastinate

QUEUE = "bench_baseline"
TASK = "bench.mark_sent"
MARK_SENT = """
UPDATE messages
   SET status = 'sent', attempts = attempts + 1, provider = 'simulator',
       next_attempt_at = NULL, sent_at = clock_timestamp(), updated_at = clock_timestamp()
 WHERE created_at = %(created_at)s::timestamptz AND id = %(id)s::uuid AND status = 'queued'
"""


def create_app(db_url: str) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=db_url))

    @app.task(name=TASK, queue=QUEUE)
    async def mark_sent(id: str, created_at: str) -> None:
        await app.connector.execute_query_async(MARK_SENT, id=id, created_at=created_at)

    return app


async def defer(db_url: str, count: int) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT id::text, created_at::text FROM messages WHERE status = 'queued'"
            " ORDER BY created_at LIMIT %s",
            (count,),
        )
        rows = await cursor.fetchall()
    app = create_app(db_url)
    async with app.open_async():
        task = app.tasks[TASK]
        for start in range(0, len(rows), 1000):
            chunk: list[dict[str, Any]] = [
                {"id": id_, "created_at": created} for id_, created in rows[start : start + 1000]
            ]
            await task.batch_defer_async(*chunk)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        # Statistics that know the queue is deep, as autovacuum would have them in a steady
        # state: with the empty-table estimate the fetch scans and sorts every job.
        await conn.execute("ANALYZE procrastinate_jobs")
    return len(rows)


async def work(db_url: str, concurrency: int) -> None:
    app = create_app(db_url)
    async with app.open_async():
        await app.run_worker_async(
            queues=[QUEUE],
            name="bench-baseline",
            concurrency=concurrency,
            delete_jobs="successful",
            fetch_job_polling_interval=1.0,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["defer", "worker"])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    db_url = os.environ["DATABASE_URL"]
    if args.command == "defer":
        print(asyncio.run(defer(db_url, args.count)))
    else:
        asyncio.run(work(db_url, args.concurrency))


if __name__ == "__main__":
    main()
