"""Per-request dependencies: the process's services, a pooled connection, the caller."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from litestar.datastructures import State
from psycopg_pool import AsyncConnectionPool

from core.accept import DispatchScheduler
from core.settings import Settings
from db import Conn


@dataclass
class Services:
    """Built once per process by the app factory's lifespan; lives on ``app.state``."""

    settings: Settings
    pool: AsyncConnectionPool[Conn]
    scheduler: DispatchScheduler


def services(state: State) -> Services:
    found = state.get("services")
    if not isinstance(found, Services):
        raise RuntimeError("app.state.services is set by the app factory's lifespan")
    return found


async def provide_conn(state: State) -> AsyncGenerator[Conn, None]:
    # Autocommit connections: a handler that needs a unit of work opens it explicitly
    # with `conn.transaction()`, so nothing is left open across an await by accident.
    async with services(state).pool.connection() as conn:
        yield conn
