"""Hourly rollups of messages, folded by a periodic job: closed hours, and the hour in
progress as it goes.

An hour's rollup rows (per tenant, destination country, provider and status: messages,
segments, price, cost and latency buckets) are kept equal to its messages, one
transaction per hour (``smsgw_fold_rollup_hour_v3``): a fold killed midway leaves the
hour as it was and the hour still due. Nothing is added to the status trigger, so the
hot path pays nothing for rollups.

An hour is folded when it closes, again every ``rollup_refresh_minutes`` while its
messages may still change (receipts, retries, scheduled sends), and a last time once it
is older than ``rollup_settle_hours`` with none of its messages scheduled, queued or
sending: then it is final and never folded again, so its rollups stay when retention
drops its raw messages. A receipt that arrives after that is not counted (documented).
The first fold reads the whole hour (found by its messages' id range) and records the
messages not final yet, with what it added for each, in ``rollup_pending``; a refold
reads those only, by key, takes back what was added for each whose share changed and
adds its share now: a message final when its hour closes costs one fold in its life
instead of seven, one still ``sent`` then (its receipt to come) about two. A
refold reads the whole hour again when the hour gained messages since (an accept that
committed after the hour's first fold: counted until a fold ran 10 minutes after the
hour's end), when an older release's fold ran between, when a crash emptied the unlogged
``rollup_pending``, or when asked (``full``: repair).

The hour in progress is folded too (``fold_open``, the same job, every 20 s, the mark
moving in whole steps of ``rollup_open_step_seconds``, 60), so that reports read raw
messages for a short tail only, not the up to ~65 minutes before the last closed hour's
fold (millions of messages at 100M a day). Each of its folds
(``smsgw_fold_rollup_hour_v4`` with a mark) adds only the messages created between the
hour's fold mark (``rollup_hours.folded_through``) and a new mark
``rollup_open_lag_seconds`` (30) behind the clock (down to a whole step), read by the
range of their ids, with the same shares and the same ``rollup_pending`` records as a
first fold; an accept commits long before the lag is over, and one that commits behind
the mark anyway is found when the hour closes (more messages than folded: the hour is
read whole, as for an hour that gained messages since its first fold). Messages already
folded are not read again while the hour is open: their status changes (receipts) are
taken in when it closes, as a closed hour's are at its refreshes. The closing fold adds
the messages after the last mark, then refolds the pending ones as v3 does; a fold
killed midway, open or closing, leaves the hour as it was. The open hour's first fold
waits until the hour before it is folded whole, so only the newest folded hour is ever
partial, and reports read rollups before its mark and raw messages from it
(``smsgw_rollup_tail_v1``): each message once, a tail of the lag plus up to a step and
the job's 20 s (30 s to about 2 minutes). The open hour's rows stay out of the cubes
(``rollup_hours.in_cubes`` false; the cubes' trigger skips them): each open fold rewrites
only the hour's rows its messages touch (its cost follows those rows, so steps of a
minute cost less than steps of 20 s), and the closing fold, after v3, puts the hour's
rows into the cubes once, in its transaction (``smsgw_cube_rollup_hour_v1``); a closed
hour an older release's fold left out of the cubes is due until a fold puts it in.
Reports read the rows of the hours out of the cubes beside the cubes
(``smsgw_rollups_out_of_cubes_v1``; docs/scaling.md, "The open hour", for the cost). An
open hour is not closed: ``due_hours``, settling and ``rollups.folded`` consider closed
hours only (an hour left partial is due as soon as it closes), and it is never final.

Daily cubes (``daily_rollups``: a tenant's detail; ``daily_tenant_rollups``: per
tenant; ``daily_route_rollups``: per country, provider, status and currency, with the
latency buckets; the last two also per hour, ``hourly_tenant_rollups`` and
``hourly_route_rollups``) are the sums of each UTC day's (hour's) hourly rows at every
commit, but for the open hour's (above): a statement-level trigger on
``message_rollups`` adds what a fold writes and subtracts what it removes, in the fold's
transaction. The fold (v2) merges the hour's rows rather
than replacing them, so a refold writes, and the trigger sums, only the rows that
changed. A day's cubes thus exist from its first folded hour on, while late receipts and
scheduled sends keep its hours open, and reports over whole days read them (a 30-day
report at 100M messages a day: about 600,000 tenant rows instead of 216M hourly rows).
Retention drops hourly rows and cubes of the same days together.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from psycopg_pool import AsyncConnectionPool

from core.settings import Settings
from db import Conn
from db import rollups as rollups_db

log = structlog.get_logger("smsgw.rollups")

# Hours folded per job run at most, so one run stays short (a new install folds its
# existing history over a few runs).
HOURS_PER_RUN = 200


async def fold_due(
    pool: AsyncConnectionPool[Conn],
    settings: Settings,
    *,
    at: datetime | None = None,
    limit: int = HOURS_PER_RUN,
) -> int:
    """Fold the hours that are due, oldest first, each in its own transaction; returns
    how many were folded. ``at`` is the clock (tests move it ahead)."""
    clock = at or datetime.now(UTC)
    folded: list[datetime] = []
    async with pool.connection() as conn:
        due = await rollups_db.due_hours(
            conn,
            at=clock,
            # One day beyond raw retention: every hour that still has messages.
            lookback_days=settings.retention_days + 1,
            settle_hours=settings.rollup_settle_hours,
            refresh_minutes=settings.rollup_refresh_minutes,
            limit=limit,
        )
        for row in due:
            async with conn.transaction():
                await rollups_db.fold_hour(conn, hour=row["hour"], settled=row["settled"])
            folded.append(row["hour"])
        # A line when the folded hours hold messages; an idle gateway refolding its
        # empty hours writes none (issue 21: an idle gateway is quiet).
        if folded and await rollups_db.messages_in(conn, hours=folded):
            log.info("rollups.folded", hours=len(folded))
    return len(folded)


async def fold_open(
    pool: AsyncConnectionPool[Conn], settings: Settings, *, at: datetime | None = None
) -> None:
    """Fold the hour in progress up to ``rollup_open_lag_seconds`` before ``at`` (the
    clock), down to a whole ``rollup_open_step_seconds``: only its messages after the
    last fold's mark are read, and a run within the same step finds nothing to do.
    Nothing in an hour's first seconds (the mark is still in the hour before, folded
    whole when it closed), nor when the lag is 0."""
    if settings.rollup_open_lag_seconds <= 0:
        return
    through = (at or datetime.now(UTC)).astimezone(UTC) - timedelta(
        seconds=settings.rollup_open_lag_seconds
    )
    step = settings.rollup_open_step_seconds
    if step > 0:
        # Whole steps since the epoch: the marks of every run and worker agree.
        whole = int(through.timestamp()) // step * step
        through = datetime.fromtimestamp(whole, tz=UTC)
    async with pool.connection() as conn, conn.transaction():
        await rollups_db.fold_open_hour(conn, through=through)


async def drop_old(pool: AsyncConnectionPool[Conn], settings: Settings) -> int:
    """Delete hourly rollups and daily cubes older than ``rollup_retention_days``."""
    async with pool.connection() as conn, conn.transaction():
        return await rollups_db.drop_old(conn, retention_days=settings.rollup_retention_days)
