"""Migrations: idempotent, and a migrated database equals one built from db/schema.sql."""

from __future__ import annotations

import difflib
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
from tests import support


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
