"""Applies delivery receipts waiting in the inbox (core/receipts.py)."""

from __future__ import annotations

import time
from collections import Counter

import procrastinate
import structlog

from core import receipts
from jobs.context import deps_of

log = structlog.get_logger("smsgw.receipts")

QUEUE = "receipts"
BATCH = 1000
RUN_SECONDS = 0.9


def register(app: procrastinate.App) -> None:
    @app.periodic(cron="* * * * * *", periodic_id="receipts")
    @app.task(name="smsgw.apply_receipts", queue=QUEUE, pass_context=True)
    async def apply_receipts(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        deadline = time.monotonic() + RUN_SECONDS
        totals: Counter[str] = Counter()
        while time.monotonic() < deadline:
            counts = await receipts.apply_due(deps.pool, limit=BATCH)
            totals.update(counts)
            if counts["due"] < BATCH:
                break
        # One line a run that found receipts, its batches added up; none when idle.
        if totals["applied"] or totals["waiting"]:
            log.info(
                "receipts.applied",
                due=totals["due"],
                applied=totals["applied"],
                consumed=totals["consumed"],
                waiting=totals["waiting"],
            )

    del apply_receipts
