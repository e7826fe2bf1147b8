"""The periodic job behind the search by recipient: it indexes the messages of closed
minutes behind the clock, each once, and leaves the newest to the search's walk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core import recipient_index
from tests import support


async def _indexed(conn) -> int:
    return await support.count(conn, "SELECT count(*) AS n FROM message_recipients")


async def test_messages_are_indexed_once_a_lag_behind_the_clock(api, tenant, conn, pool):
    for _ in range(3):
        assert (await support.send(api, tenant)).status_code == 202
    before = await _indexed(conn)
    # Now: the messages are younger than the lag, so they are left to the walk.
    assert await recipient_index.index_closed_minutes(pool) == 0
    assert await _indexed(conn) == before
    # Three minutes on, the job indexes them, and a second run finds nothing new.
    later = datetime.now(UTC) + timedelta(minutes=3)
    assert await recipient_index.index_closed_minutes(pool, at=later) == 3
    assert await recipient_index.index_closed_minutes(pool, at=later) == 0
    assert await _indexed(conn) == before + 3
    cursor = await conn.execute("SELECT indexed_through FROM recipient_index")
    mark = (await cursor.fetchone())["indexed_through"]
    assert mark == (later - recipient_index.LAG).replace(second=0, microsecond=0)
