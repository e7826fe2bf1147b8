"""Dispatch: one job is one tenant's turn; it claims a batch of due messages and sends
them (core/delivery.py), and defers the tenant's next turn when more is due."""

from __future__ import annotations

import uuid

import procrastinate
import structlog

from core import delivery
from jobs.context import deps_of
from jobs.scheduler import DISPATCH_TASK


def register(app: procrastinate.App) -> None:
    # The queue is chosen per job at defer time: the tenant's tier.
    @app.task(name=DISPATCH_TASK, pass_context=True)
    async def dispatch(context: procrastinate.JobContext, tenant_id: str) -> None:
        deps = deps_of(context)
        job_id = context.job.id if context.job else None
        with structlog.contextvars.bound_contextvars(tenant_id=tenant_id, job_id=job_id):
            await delivery.dispatch_turn(
                deps.pool,
                tenant_id=uuid.UUID(tenant_id),
                upstreams=deps.upstreams,
                scheduler=deps.scheduler,
                config=deps.dispatch,
            )

    del dispatch
