"""The index behind a search of a tenant's messages by recipient.

The accept does not write it (a row and a random index insert per message cost the
accept ~18% in the database); a periodic job indexes the messages of closed minutes a
little behind the clock, in one sorted insert per run, and the search walks the
tenant's messages after the indexed instant (db/queries/messages.sql,
``list_messages_to``). When the job stops the search stays right and only slows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from psycopg_pool import AsyncConnectionPool

from db import Conn
from db import messages as messages_db

log = structlog.get_logger("smsgw.recipient_index")

# How far behind the clock the index stays: a message's created_at is its id's instant,
# taken before its accept commits; one committed this late after it would be in neither
# the index nor the walk after it. Accepts time out long before (request and statement
# timeouts are seconds).
LAG = timedelta(minutes=2)


async def index_closed_minutes(
    pool: AsyncConnectionPool[Conn], *, at: datetime | None = None
) -> int:
    """Index the messages created up to the minute ``LAG`` before ``at`` (now); how many.
    One transaction."""
    now = at or datetime.now(UTC)
    through = (now - LAG).replace(second=0, microsecond=0)
    async with pool.connection() as conn, conn.transaction():
        indexed = await messages_db.index_recipients(conn, through=through)
    if indexed:
        log.info("recipients.indexed", messages=indexed, through=through.isoformat())
    return indexed
