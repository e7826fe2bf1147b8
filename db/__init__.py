"""PostgreSQL access: the schema, its migrations and every query the gateway runs.

Each ``db/queries/<resource>.sql`` holds named statements (``-- name: <name>`` then the
statement, ``%(param)s`` placeholders). Each ``db/<resource>.py`` module exposes one small
async function per statement, taking the connection first and keyword arguments after.
Nothing here opens, commits or rolls back a transaction: the caller owns the unit of work.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow

Conn: TypeAlias = AsyncConnection[DictRow]
Row: TypeAlias = dict[str, Any]
