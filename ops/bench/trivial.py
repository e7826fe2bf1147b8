"""The ceiling for single-message ingest: a trivial Litestar endpoint doing one INSERT of a
message-like row, served exactly as `smsgw api` serves the gateway (granian, ASGI,
uvloop, same backlog, same number of server processes, same pool bounds).

Its process is tuned as the gateway's is (start-up objects frozen out of the garbage
collector's reach). No auth, no validation beyond msgspec's decoding, no hold, no
enqueue: what is left is the cost of HTTP, Litestar and one round trip to PostgreSQL,
which is what the gateway's POST /v1/messages is compared to. Needs the table
`bench_scratch.trivial_messages` (ops/bench/scratch.sql).

    python -m ops.bench.trivial --port 8001 --workers 1      (DATABASE_URL in the environment)
"""

from __future__ import annotations

import argparse
import os
import uuid
from datetime import datetime

import msgspec
from litestar import Litestar, post
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from smsgw.gc_tuning import freeze_startup_objects

INSERT = (
    "INSERT INTO bench_scratch.trivial_messages (tenant_id, status, to_number, body,"
    " segments, price) VALUES (1, 'queued', %s, %s, 1, 7900) RETURNING id, created_at"
)


class Send(msgspec.Struct, forbid_unknown_fields=True):
    to: str
    body: str


class Accepted(msgspec.Struct):
    id: int
    status: str
    to: str
    created_at: datetime


def create() -> Litestar:
    """ASGI factory (``ops.bench.trivial:create``); a process entry point, so it reads
    the environment, as smsgw/asgi.py does."""
    pool: AsyncConnectionPool[AsyncConnection] = AsyncConnectionPool(
        os.environ["DATABASE_URL"],
        min_size=int(os.environ.get("SMSGW_DB_POOL_MIN", "2")),
        max_size=int(os.environ.get("SMSGW_DB_POOL_MAX", "20")),
        kwargs={"autocommit": True},
        open=False,
        name=f"trivial-{uuid.uuid4().hex[:6]}",
    )

    async def open_pool() -> None:
        await pool.open(wait=True, timeout=30)

    async def close_pool() -> None:
        await pool.close()

    @post("/v1/messages", status_code=202)
    async def send(data: Send) -> Accepted:
        async with pool.connection() as conn:
            cursor = await conn.execute(INSERT, (data.to, data.body))
            row = await cursor.fetchone()
        assert row is not None
        return Accepted(id=row[0], status="queued", to=data.to, created_at=row[1])

    app = Litestar([send], on_startup=[open_pool], on_shutdown=[close_pool])
    # As smsgw/asgi.py does for the gateway: the comparison is of the endpoints' code, not
    # of how often the collector walks the process.
    freeze_startup_objects()
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    from granian import Granian
    from granian.constants import Interfaces, Loops

    # The arguments of `smsgw api` (smsgw/cli.py, cmd_api): keep them in step.
    Granian(
        "ops.bench.trivial:create",
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
        backlog=4096,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
