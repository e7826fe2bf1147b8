"""The process's connection pool."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from db import Conn


async def _autocommit(conn: Conn) -> None:
    # Units of work are explicit `conn.transaction()` blocks; nothing opens one implicitly.
    # (Set here, not in kwargs: procrastinate's listener connects with the pool's kwargs
    # plus its own autocommit=True, and a duplicate keyword would fail.)
    await conn.set_autocommit(True)


async def open_pool(
    conninfo: str, *, min_size: int = 2, max_size: int = 20, name: str = "smsgw"
) -> AsyncConnectionPool[Conn]:
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        configure=_autocommit,
        connection_class=AsyncConnection,
        # A request waits at most this long for a connection, then gets a 503.
        timeout=10,
        name=name,
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    return pool
