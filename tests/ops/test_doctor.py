"""`smsgw doctor` tells an operator what needs attention, and says so in its exit status."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import psycopg
import pytest

from smsgw import processes
from tests import support, workers


async def doctor(db_url: str, *args: str, **env: str) -> tuple[int, str]:
    """Runs `smsgw doctor` as an operator would; returns its exit status and output."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    environ.pop("REPORTING_DATABASE_URL", None)
    environ.update({"DATABASE_URL": db_url, **env})
    proc = await asyncio.create_subprocess_exec(
        *processes.smsgw_command("doctor", *args),
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def line(output: str, check: str) -> str:
    """The line of one check: `<status> <check>  <detail>`."""
    found = [row for row in output.splitlines() if row.split()[1:2] == [check]]
    assert len(found) == 1, output
    return found[0]


async def test_a_running_gateway_is_all_ok(db_url, settings):
    async with workers.in_process(settings):
        await workers.eventually(lambda: _workers_alive(db_url))
        status, output = await doctor(db_url, "--ledger")
    assert status == 0, output
    for check in ("database", "schema", "partitions", "queue", "workers", "jobs", "providers"):
        assert line(output, check).startswith("ok"), output
    assert line(output, "ledger").startswith("ok")
    assert output.rstrip().endswith("Everything looks right.")


async def test_no_live_worker_and_a_late_queue_need_attention(db_url, api, conn, tenant):
    sent = await support.send(api, tenant)
    assert sent.status_code == 202
    # Queued five minutes ago, and nobody has taken it since.
    await conn.execute("UPDATE messages SET next_attempt_at = now() - interval '5 minutes'")
    status, output = await doctor(db_url)
    assert status == 1, output
    assert line(output, "workers").startswith("fail")
    assert "start smsgw worker" in line(output, "workers")
    queue = line(output, "queue")
    assert queue.startswith("warn")
    assert "standard 1 due" in queue
    assert "standard behind" in queue
    # A due dispatch turn waits for a worker too.
    await conn.execute(
        "UPDATE procrastinate_jobs SET scheduled_at = now() - interval '5 minutes'"
        " WHERE status = 'todo'"
    )
    _, output = await doctor(db_url)
    assert line(output, "jobs").startswith("warn")
    assert "standard: 1 job(s) waiting" in line(output, "jobs")


async def test_an_open_breaker_and_missing_partitions_are_named(db_url, conn):
    await conn.execute("INSERT INTO provider_health (provider, state) VALUES ('agg', 'open')")
    await conn.execute(
        "DO $$DECLARE t text; BEGIN FOR t IN SELECT c.relname FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'messages'::regclass"
        " AND c.relname > 'messages_' || to_char((now() AT TIME ZONE 'UTC')::date + 1,"
        " 'YYYYMMDD') LOOP EXECUTE format('DROP TABLE %I', t); END LOOP; END$$"
    )
    status, output = await doctor(db_url)
    assert status == 1
    assert line(output, "providers").startswith("warn")
    assert "breaker open: agg" in line(output, "providers")
    partitions = line(output, "partitions")
    assert partitions.startswith("warn")
    assert "(1 day(s) ahead)" in partitions


async def test_json_for_machines(db_url):
    status, output = await doctor(db_url, "--json")
    assert status == 1  # no worker
    findings = json.loads(output)
    assert {f["check"] for f in findings} >= {"database", "schema", "workers", "replica"}
    assert {f["status"] for f in findings} <= {"ok", "warn", "fail"}
    assert all(f["detail"] for f in findings)


async def test_a_database_never_migrated_fails_on_its_schema(pg_server):
    name = f"d_{uuid.uuid4().hex[:16]}"
    janitor = pg_server.janitor(name)
    janitor.init()
    try:
        status, output = await doctor(pg_server.url(name))
    finally:
        janitor.drop()
    assert status == 1
    assert line(output, "schema").startswith("fail")
    assert "smsgw migrate" in line(output, "schema")


async def test_a_database_of_the_pre_release_history_must_be_recreated(db_url, conn):
    await conn.execute("DELETE FROM smsgw_migrations")
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO smsgw_migrations (version, name) VALUES (%s, %s)",
            support.PRE_RELEASE_HISTORY,
        )
    status, output = await doctor(db_url)
    assert status == 1
    schema = line(output, "schema")
    assert schema.startswith("fail")
    assert "pre-release smsgw" in schema
    assert "recreated" in schema


@pytest.mark.parametrize("broken", ["primary", "reporting"])
async def test_an_unreachable_database_is_said_plainly(db_url, broken):
    nowhere = f"postgresql://smsgw:x@127.0.0.1:{processes.free_port()}/smsgw"
    if broken == "primary":
        status, output = await doctor(nowhere)
        assert status == 2
        assert line(output, "database").startswith("fail")
        assert "cannot connect" in output
    else:
        status, output = await doctor(db_url, REPORTING_DATABASE_URL=nowhere)
        assert status == 1
        assert line(output, "replica").startswith("fail")
        assert "REPORTING_DATABASE_URL: cannot connect" in line(output, "replica")


async def test_a_reporting_url_that_is_not_a_standby_is_flagged(db_url):
    # The same database under another spelling: reachable, but not a replica.
    other = db_url.replace("127.0.0.1", "localhost")
    _, output = await doctor(db_url, REPORTING_DATABASE_URL=other)
    assert line(output, "replica").startswith("warn")
    assert "not a standby" in line(output, "replica")


async def _workers_alive(db_url: str) -> bool:
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM procrastinate_workers"
            " WHERE last_heartbeat > now() - '30 s'::interval"
        )
        row = await cursor.fetchone()
        return bool(row and row[0])
