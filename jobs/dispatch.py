"""Dispatch: one job is one turn of a tier; it claims a batch of due messages from each
of the tier's longest-waiting tenants and sends them (core/delivery.py)."""

from __future__ import annotations

import procrastinate
import structlog

from core import delivery
from jobs.context import deps_of
from jobs.scheduler import DISPATCH_TASK


def register(app: procrastinate.App) -> None:
    # The queue is chosen per job at defer time: the tier.
    @app.task(name=DISPATCH_TASK, pass_context=True)
    async def dispatch(context: procrastinate.JobContext, tier: str) -> None:
        deps = deps_of(context)
        job_id = context.job.id if context.job else None
        with structlog.contextvars.bound_contextvars(tier=tier, job_id=job_id):
            await delivery.dispatch_turn(
                deps.pool,
                tier=tier,
                upstreams=deps.upstreams,
                task=DISPATCH_TASK,
                config=deps.dispatch,
            )

    del dispatch
