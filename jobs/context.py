"""What a running task needs, handed over by the worker as procrastinate's
``additional_context`` (tasks are registered once and must not read globals)."""

from __future__ import annotations

from dataclasses import dataclass

import procrastinate
from psycopg_pool import AsyncConnectionPool

from core.accept import DispatchScheduler
from core.dispatch import DispatchConfig, Upstreams
from core.settings import Settings
from db import Conn
from jobs.webhook_transport import WebhookClient


@dataclass(frozen=True)
class WorkerDeps:
    settings: Settings
    pool: AsyncConnectionPool[Conn]
    upstreams: Upstreams
    scheduler: DispatchScheduler
    dispatch: DispatchConfig
    # Status callbacks to tenants; one client so connections are pooled per host.
    http: WebhookClient


def deps_of(context: procrastinate.JobContext) -> WorkerDeps:
    deps = context.additional_context.get("deps")
    if not isinstance(deps, WorkerDeps):
        raise RuntimeError("the worker was started without WorkerDeps in additional_context")
    return deps
