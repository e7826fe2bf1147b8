"""Dispatch: one job per tenant turn claims a batch of due messages and sends them."""

from __future__ import annotations

import procrastinate

from jobs.scheduler import DISPATCH_TASK


def register(app: procrastinate.App) -> None:
    @app.task(name=DISPATCH_TASK, pass_context=True)
    async def dispatch(context: procrastinate.JobContext, tenant_id: str) -> None:
        raise NotImplementedError("delivery is issue 3")

    _ = dispatch
