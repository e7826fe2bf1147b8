"""Migrations: idempotent, a migrated database equals one built from db/schema.sql, and a
database of the pre-release history is refused, not taken for the baseline."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from db import migrate
from smsgw.embedded import SUPERUSER, find_bindir
from smsgw.processes import smsgw_command
from tests import support


def record_pre_release_history(url: str) -> None:
    """Make a database look like one migrated by a pre-release smsgw (a developer's
    ./data from `smsgw run`): its tables are today's, its history is the old one."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM smsgw_migrations")
        conn.cursor().executemany(
            "INSERT INTO smsgw_migrations (version, name) VALUES (%s, %s)",
            support.PRE_RELEASE_HISTORY,
        )


@pytest.fixture
def empty_db(pg_server) -> Iterator[str]:
    name = f"m_{uuid.uuid4().hex[:16]}"
    janitor = pg_server.janitor(name)
    janitor.init()
    try:
        yield pg_server.url(name)
    finally:
        janitor.drop()


@pytest.fixture
def schema_db(pg_server) -> Iterator[str]:
    name = f"s_{uuid.uuid4().hex[:16]}"
    janitor = pg_server.janitor(name)
    janitor.init()
    try:
        url = pg_server.url(name)
        with psycopg.connect(url, autocommit=True) as conn:
            support.load_schema(conn)
        yield url
    finally:
        janitor.drop()


async def run_migrate(url: str) -> list[str]:
    return await migrate.migrate(url)


async def version(url: str) -> int | None:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)
    async with conn:
        return await migrate.current_version(conn)


def dump(pg_server, url: str) -> str:
    pg_dump = Path(find_bindir()) / "pg_dump"
    dbname = url.rsplit("/", 1)[1]
    result = subprocess.run(
        [
            str(pg_dump),
            "--schema-only",
            "--no-owner",
            "-h",
            pg_server.host,
            "-p",
            str(pg_server.port),
            "-U",
            SUPERUSER,
            dbname,
        ],
        env={"PGPASSWORD": pg_server.password, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    # Only what must differ between two databases is normalised: their names, and the
    # random token of the \restrict lines pg_dump >= 15.14 wraps its output in.
    text = result.stdout.replace(dbname, "<db>")
    text = re.sub(r"^\\(un)?restrict \S+$", r"\\\1restrict <token>", text, flags=re.M)
    return text


async def test_migrating_twice_applies_nothing_the_second_time(empty_db):
    assert await version(empty_db) is None
    first = await run_migrate(empty_db)
    assert first[0] == "procrastinate schema"
    assert first[1:] == [f"{m.version:04d}_{m.name}" for m in migrate.migrations()]
    assert await version(empty_db) == migrate.latest_version()
    assert await run_migrate(empty_db) == []
    assert await version(empty_db) == migrate.latest_version()


async def test_migrated_database_equals_schema_sql(pg_server, empty_db, schema_db):
    assert await run_migrate(empty_db)
    migrated, built = dump(pg_server, empty_db), dump(pg_server, schema_db)
    assert "CREATE TABLE public.messages" in built
    assert "procrastinate_jobs" in built
    if migrated != built:
        diff = "\n".join(
            difflib.unified_diff(
                built.splitlines(), migrated.splitlines(), "schema.sql", "migrations", lineterm=""
            )
        )
        pytest.fail(f"a migrated database differs from db/schema.sql:\n{diff}")
    # schema.sql also records itself as the latest migration, so `migrate` leaves it be.
    assert await version(schema_db) == migrate.latest_version()
    assert await run_migrate(schema_db) == []


async def test_a_database_of_the_pre_release_history_is_refused_not_taken_for_the_baseline(
    schema_db,
):
    # Versions 1..19 are recorded, so a migrator going by numbers alone would take it
    # for a baseline database and skip every migration numbered up to 19.
    record_pre_release_history(schema_db)
    with pytest.raises(migrate.PreReleaseDatabase, match=r"pre-release smsgw .* recreated"):
        await run_migrate(schema_db)
    with pytest.raises(migrate.PreReleaseDatabase):
        await version(schema_db)
    with psycopg.connect(schema_db) as conn:
        recorded = conn.execute("SELECT version, name FROM smsgw_migrations ORDER BY 1")
        assert recorded.fetchall() == support.PRE_RELEASE_HISTORY  # nothing was applied


def test_smsgw_migrate_stops_on_a_database_of_the_pre_release_history(schema_db):
    record_pre_release_history(schema_db)
    env = {**os.environ, "DATABASE_URL": schema_db, "SMSGW_LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        smsgw_command("migrate"), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "made by a pre-release smsgw" in result.stderr
    assert "0001_initial .. 0019_ledger_entries_without_tenant_index" in result.stderr
    assert "remove its data folder" in result.stderr  # the embedded one of `smsgw run`
    assert "Traceback" not in result.stderr


async def test_versions_newer_than_the_code_are_not_taken_for_a_foreign_history(schema_db):
    # A later release migrated the database while this code still runs (a deploy): it
    # is ahead, not foreign; migrate applies nothing and the version says how far.
    with psycopg.connect(schema_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO smsgw_migrations (version, name) VALUES (%s, 'from_the_future')",
            (migrate.latest_version() + 1,),
        )
    assert await run_migrate(schema_db) == []
    assert await version(schema_db) == migrate.latest_version() + 1
