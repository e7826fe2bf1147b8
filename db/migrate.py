"""Forward-only migrations: procrastinate's schema, then ``db/migrations/NNNN_name.sql``.

Idempotent: applied versions are recorded in ``smsgw_migrations``, and concurrent runs
(several api processes starting at once) queue on an advisory lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from procrastinate.schema import SchemaManager
from psycopg.rows import dict_row

from db import Conn
from db.partitions import ensure_partitions

_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
_LOCK = 0x5_35_47_57  # "SMSGW": one advisory lock id for every migrator

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS smsgw_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("db").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match["version"]), match["name"], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError("db/migrations must be numbered 0001, 0002, ... without gaps")
    return found


def latest_version() -> int:
    return migrations()[-1].version


async def current_version(conn: Conn) -> int | None:
    """The newest applied migration, or None on a database never migrated."""
    cursor = await conn.execute("SELECT to_regclass('smsgw_migrations') IS NOT NULL AS ok")
    row = await cursor.fetchone()
    if row is None or not row["ok"]:
        return None
    cursor = await conn.execute("SELECT max(version) AS version FROM smsgw_migrations")
    row = await cursor.fetchone()
    return None if row is None else row["version"]


async def migrate(database_url: str, *, partitions_ahead_days: int = 7) -> list[str]:
    """Bring the database to the latest schema; returns what was applied.

    On a connection of its own, in autocommit: each migration commits on its own, and
    the advisory lock that queues concurrent runs is the session's.
    """
    applied: list[str] = []
    conn = await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    )
    try:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
        await conn.execute(_BOOKKEEPING)
        cursor = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NULL AS missing")
        row = await cursor.fetchone()
        if row is not None and row["missing"]:
            async with conn.transaction():
                await conn.execute(SchemaManager.get_schema())
            applied.append("procrastinate schema")
        cursor = await conn.execute("SELECT version FROM smsgw_migrations")
        done = {r["version"] for r in await cursor.fetchall()}
        for migration in migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO smsgw_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            applied.append(f"{migration.version:04d}_{migration.name}")
        async with conn.transaction():
            await ensure_partitions(conn, days_ahead=partitions_ahead_days)
    finally:
        # Ends the session, and with it the advisory lock.
        await conn.close()
    return applied
