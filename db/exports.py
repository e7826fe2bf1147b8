"""A tenant's messages for export, streamed by a server-side cursor."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

from db import Conn, Row
from db.sql import Queries

_q = Queries("exports")

# Rows per round trip of the cursor: enough to stream fast, few enough to keep memory flat.
FETCH_ROWS = 5000


async def tenant_messages(
    conn: Conn, *, tenant_id: uuid.UUID, starts: datetime, ends: datetime
) -> AsyncIterator[Row]:
    """The tenant's messages of the window, oldest first. A named (server-side) cursor:
    the caller's transaction must stay open while this is iterated."""
    async with conn.cursor(name="export_messages") as cursor:
        cursor.itersize = FETCH_ROWS
        await cursor.execute(
            _q["tenant_messages"], {"tenant_id": tenant_id, "starts": starts, "ends": ends}
        )
        async for row in cursor:
            yield row
