"""Per-request dependencies: the process's services, a pooled connection, the caller."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from litestar.datastructures import State
from psycopg_pool import AsyncConnectionPool

from app.observability import HttpMetrics
from core import webhook_policy
from core.accept import DispatchScheduler
from core.auth_throttle import FailedAuthThrottle
from core.coalesce import SendCoalescer
from core.key_cache import KeyCache
from core.observability import Observer
from core.settings import Settings
from core.webhook_policy import DestinationPolicy
from db import Conn


@dataclass
class Services:
    """Built once per process by the app factory's lifespan; lives on ``app.state``."""

    settings: Settings
    pool: AsyncConnectionPool[Conn]
    scheduler: DispatchScheduler
    # Reports read here: the replica when REPORTING_DATABASE_URL is set, else a small
    # read-only pool of its own on the primary. The hot path never takes from it.
    reporting: AsyncConnectionPool[Conn]
    observer: Observer
    http_metrics: HttpMetrics
    auth_throttle: FailedAuthThrottle
    # Tenants of keys seen lately, for single sends only (the accept re-checks them).
    key_cache: KeyCache = field(default_factory=KeyCache)
    # Single sends without an Idempotency-Key go to the database together (None: each
    # in a call of its own).
    sends: SendCoalescer | None = None

    @property
    def destinations(self) -> DestinationPolicy:
        """Where tenants' webhook URLs may point (SMSGW_WEBHOOK_ALLOWED_NETWORKS)."""
        return webhook_policy.policy(self.settings.webhook_allowed_networks)


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


async def provide_reporting_conn(state: State) -> AsyncGenerator[Conn, None]:
    """A read-only connection of the reporting pool, for report handlers only."""
    async with services(state).reporting.connection() as conn:
        yield conn
