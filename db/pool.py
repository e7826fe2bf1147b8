"""The process's connection pools: the primary's, and a read-only one for reports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from db import Conn

# How long a caller waits for a pooled connection before PoolTimeout (the API's 503).
POOL_WAIT_SECONDS = 3.0

# How long the pool retries a connection before giving that attempt up. psycopg_pool
# doubles its delay between attempts without a cap (1, 2, 4 ... 32 s), so after a long
# outage (a primary failover) the pool would reconnect up to half a minute after the
# database is back; giving up early lets the next request start a fresh attempt at once.
RECONNECT_TIMEOUT_SECONDS = 5.0


async def _configure(conn: Conn) -> None:
    # Units of work are explicit `conn.transaction()` blocks; nothing opens one implicitly.
    # (Set here, not in kwargs: procrastinate's listener connects with the pool's kwargs
    # plus its own autocommit=True, and a duplicate keyword would fail.)
    await conn.set_autocommit(True)
    # JIT off: the hot path's statements run for milliseconds, and a compilation costs
    # more than that. The receipts' take_due (1,000 receipts, each probing the messages'
    # partitions) is estimated past jit_above_cost: with JIT on, PostgreSQL compiled,
    # optimised and inlined it on every call, 38 ms a call, 18 s of a 60 s e2e benchmark
    # phase, 15% of the server's CPU (pg_stat_statements' jit columns, perf; issue 22).
    # A session setting, so it holds on a server we do not configure; behind a
    # transaction-mode pooler, which does not carry session settings, set it on the
    # database (README).
    await conn.execute("SELECT set_config('jit', 'off', false)")


def _reporting(statement_timeout_ms: int) -> Callable[[Conn], Awaitable[None]]:
    async def configure(conn: Conn) -> None:
        await conn.set_autocommit(True)
        # Session settings, not startup options: they work on a replica, on the primary
        # and through a pooler in session mode. Read-only makes a report that tries to
        # write fail at once on the primary as it would on a replica; the timeout bounds
        # what one report can cost the server. JIT off: reports read cube rows, a
        # sub-second aggregate whose compilation cost more than it saved (30 days at full
        # scale, by country: 893 ms of JIT in 1,536 ms; 737 ms without; ops.bench.rollups).
        # work_mem 32MB: a report's aggregate over 20,000 tenants spilled to disk with the
        # default 4MB; the pool has a few connections, so the bound stays small.
        await conn.execute(
            "SELECT set_config('default_transaction_read_only', 'on', false),"
            " set_config('jit', 'off', false),"
            " set_config('work_mem', '32MB', false),"
            " set_config('statement_timeout', %s, false),"
            " set_config('application_name', 'smsgw-reporting', false)",
            (str(int(statement_timeout_ms)),),
        )

    return configure


def connection_kwargs(*, prepared_statements: bool = True) -> dict[str, Any]:
    """Keyword arguments of every pooled connection. Without prepared statements
    (a transaction-mode pooler before PgBouncer 1.21 hands each transaction to any server
    connection, where a statement prepared on another does not exist), psycopg never
    prepares: prepare_threshold None."""
    kwargs: dict[str, Any] = {"row_factory": dict_row}
    if not prepared_statements:
        kwargs["prepare_threshold"] = None
    return kwargs


async def open_pool(
    conninfo: str,
    *,
    min_size: int = 2,
    max_size: int = 20,
    name: str = "smsgw",
    prepared_statements: bool = True,
) -> AsyncConnectionPool[Conn]:
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs=connection_kwargs(prepared_statements=prepared_statements),
        configure=_configure,
        connection_class=AsyncConnection,
        # A request waits at most this long for a connection, then gets a 503. Short:
        # while the database refuses connections the pool cannot make one however long
        # a request waits, and the client must hear 503 + Retry-After before its own
        # timeout (a 5 s client saw 10 s waits as hangs: tests/faults).
        timeout=POOL_WAIT_SECONDS,
        reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
        name=name,
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    return pool


async def open_reporting_pool(
    conninfo: str, *, max_size: int = 4, statement_timeout_ms: int = 30_000
) -> AsyncConnectionPool[Conn]:
    """Reports only: read-only sessions with a statement timeout, on the replica when one
    is configured. A pool of its own even on the primary, so a slow report can never
    take a connection the hot path is waiting for."""
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        configure=_reporting(statement_timeout_ms),
        connection_class=AsyncConnection,
        timeout=10,
        reconnect_timeout=RECONNECT_TIMEOUT_SECONDS,
        name="smsgw-reporting",
        open=False,
    )
    # Not waiting for the first connection: an API whose replica is down still serves
    # the hot path; reports answer 503 until the replica is back.
    await pool.open(wait=False)
    return pool
