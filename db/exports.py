"""A tenant's messages for export, formatted by the server and streamed as bytes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

from psycopg import sql
from psycopg.abc import Buffer
from psycopg.rows import tuple_row

from db import Conn
from db.sql import Queries

_q = Queries("exports")

# JSON lines fetched per round trip of the cursor: enough to stream fast, few enough to
# keep memory flat.
FETCH_ROWS = 5000


async def tenant_messages_csv(
    conn: Conn, *, tenant_id: uuid.UUID, starts: datetime, ends: datetime
) -> AsyncIterator[Buffer]:
    """The tenant's messages of the window, oldest first, as CSV lines (no header):
    ``COPY ... TO STDOUT (FORMAT csv)``, so PostgreSQL formats and quotes every field and
    this yields what the server sends, a row or so at a time. One statement for the whole
    window: the caller's transaction runs it without the session's statement timeout."""
    copy_out = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(sql.SQL(_q["tenant_messages"]))
    params = {"tenant_id": tenant_id, "starts": starts, "ends": ends}
    await conn.execute(_q["unbounded"])
    async with conn.cursor() as cursor, cursor.copy(copy_out, params) as copy:
        async for data in copy:
            yield data


async def tenant_messages_jsonl(
    conn: Conn, *, tenant_id: uuid.UUID, starts: datetime, ends: datetime
) -> AsyncIterator[bytes]:
    """The same messages as JSON lines, a batch of lines per round trip of a named
    (server-side) cursor: the caller's transaction must stay open while this is
    iterated."""
    # Tuples, not the pool's dicts: one text a row, nothing to name.
    async with conn.cursor(name="export_messages", row_factory=tuple_row) as cursor:
        await cursor.execute(
            _q["tenant_messages_jsonl"], {"tenant_id": tenant_id, "starts": starts, "ends": ends}
        )
        while rows := await cursor.fetchmany(FETCH_ROWS):
            yield ("\n".join([row[0] for row in rows]) + "\n").encode()
