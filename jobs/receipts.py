"""Applies delivery receipts waiting in the inbox (core/receipts.py)."""

from __future__ import annotations

import procrastinate
import structlog

from core import receipts
from jobs.context import deps_of

log = structlog.get_logger("smsgw.receipts")

QUEUE = "receipts"
# One run applies for about this long; the next periodic run picks up after.
RUN_SECONDS = 0.9


def register(app: procrastinate.App) -> None:
    @app.periodic(cron="* * * * * *", periodic_id="receipts")
    @app.task(name="smsgw.apply_receipts", queue=QUEUE, pass_context=True)
    async def apply_receipts(context: procrastinate.JobContext, timestamp: int) -> None:
        totals = await receipts.apply_for(deps_of(context).pool, seconds=RUN_SECONDS)
        # One line a run that found receipts, its batches added up; none when idle.
        if totals["applied"] or totals["waiting"]:
            log.info(
                "receipts.applied",
                due=totals["due"],
                applied=totals["applied"],
                consumed=totals["consumed"],
                waiting=totals["waiting"],
                **({"deadlocks": totals["deadlocks"]} if totals["deadlocks"] else {}),
            )

    del apply_receipts
