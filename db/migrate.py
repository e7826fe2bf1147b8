"""Forward-only migrations: procrastinate's schema, then ``db/migrations/NNNN_name.sql``.

Idempotent: applied versions are recorded in ``smsgw_migrations``, and concurrent runs
(several api processes starting at once) queue on an advisory lock.

``0001_baseline`` is the schema of 1.0.0; every later change is a migration numbered
after it (never edit one that has been released) and the same change to
``db/schema.sql``, whose last statement records the migrations it contains. A database
built by the pre-release history (``0001_initial`` .. ``0019``, the same numbers under
other names) is refused (PreReleaseDatabase): it must be recreated.

Versioning: a database function or type carries a ``_vN`` suffix. When its signature or
contract changes, bump N and create the new one beside the old, which stays so that
processes of the release before can run beside new ones during a deploy; a later
release's migration drops the old one once no code that may still run calls it.
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


class PreReleaseDatabase(RuntimeError):
    """The database's recorded migrations are not this code's under the same numbers: it
    was built by a pre-release smsgw (0001_initial .. 0019), whose history the baseline
    replaced. Nothing can bring it up to date; it must be recreated."""


def _check_history(applied: dict[int, str]) -> None:
    """Raise PreReleaseDatabase unless every applied version this code knows has its name.
    Versions newer than this code's (a later release's, during a deploy) are not judged."""
    known = {m.version: m.name for m in migrations()}
    if all(known.get(version, name) == name for version, name in applied.items()):
        return
    recorded = [f"{v:04d}_{applied[v]}" for v in sorted(applied)]
    shown = recorded[0] if len(recorded) == 1 else f"{recorded[0]} .. {recorded[-1]}"
    raise PreReleaseDatabase(
        f"the database was made by a pre-release smsgw (its migrations {shown} are not "
        f"this release's 0001_{known[1]}) and must be recreated: migrate an empty database "
        "instead (for the embedded database of `smsgw run`, remove its data folder)"
    )


async def _applied(conn: Conn) -> dict[int, str]:
    cursor = await conn.execute("SELECT version, name FROM smsgw_migrations")
    return {row["version"]: row["name"] for row in await cursor.fetchall()}


async def current_version(conn: Conn) -> int | None:
    """The newest applied migration, or None on a database never migrated. Raises
    PreReleaseDatabase on a database whose history is not this code's."""
    cursor = await conn.execute("SELECT to_regclass('smsgw_migrations') IS NOT NULL AS ok")
    row = await cursor.fetchone()
    if row is None or not row["ok"]:
        return None
    applied = await _applied(conn)
    _check_history(applied)
    return max(applied, default=None)


async def migrate(database_url: str, *, partitions_ahead_days: int = 7) -> list[str]:
    """Bring the database to the latest schema; returns what was applied.

    On a connection of its own, in autocommit: each migration commits on its own, and
    the advisory lock that queues concurrent runs is the session's. Raises
    PreReleaseDatabase, having changed nothing, on a database of the pre-release history.
    """
    applied: list[str] = []
    conn = await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    )
    try:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK,))
        await conn.execute(_BOOKKEEPING)
        done = await _applied(conn)
        _check_history(done)
        cursor = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NULL AS missing")
        row = await cursor.fetchone()
        if row is not None and row["missing"]:
            async with conn.transaction():
                await conn.execute(SchemaManager.get_schema())
            applied.append("procrastinate schema")
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
