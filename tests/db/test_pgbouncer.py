"""Behind PgBouncer in transaction mode: an API and two workers connect through the
pooler (prepared statements off), LISTEN and migrations go direct, and sends are
delivered end to end with the ledger invariant clean (slow: real processes)."""

from __future__ import annotations

import contextlib
import os
import time
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from ops import pgbouncer
from smsgw import processes
from tests.conftest import ADMIN_TOKEN
from tests.workers import FAST

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _env(pooled: str, direct: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update(
        {
            "DATABASE_URL": pooled,
            "DIRECT_DATABASE_URL": direct,
            "SMSGW_DB_PREPARED_STATEMENTS": "false",
            "SMSGW_ADMIN_TOKEN": ADMIN_TOKEN,
            "SMSGW_LOG_JSON": "true",
            "SMSGW_AUTH_FAILURES_LIMIT": "100000",
        }
    )
    for key, value in FAST.items():
        env[f"SMSGW_{key.upper()}"] = str(value)
    return env


def test_sends_go_end_to_end_through_pgbouncer_in_transaction_mode(pg_server, db_url, tmp_path):
    if not pgbouncer.available():
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    with pgbouncer.running(pg_server.host, pg_server.port, pg_server.password) as listen:
        pooled = _through(db_url, listen)
        env = _env(pooled, db_url)
        # Migrations go direct (a session advisory lock queues them): on the clone they
        # find nothing to do, and the command must still succeed through this env.
        migrated = processes.spawn(
            processes.smsgw_command("migrate"), env=env, log=tmp_path / "m.log"
        )
        assert migrated.wait(timeout=60) == 0, (tmp_path / "m.log").read_text()
        port = processes.free_port()
        procs = [
            processes.spawn(
                processes.smsgw_command("api", "--port", str(port)),
                env=env,
                log=tmp_path / "api.log",
            ),
            *(
                processes.spawn(
                    processes.smsgw_command("worker", "--name", f"w{i}"),
                    env=env,
                    log=tmp_path / f"worker{i}.log",
                )
                for i in (1, 2)
            ),
        ]
        base = f"http://127.0.0.1:{port}"
        try:
            processes.wait_http(f"{base}/ready", watch=procs, timeout=30)
            before = pgbouncer.stats(listen, pg_server.password)
            with httpx.Client(base_url=base, timeout=30) as client:
                made = client.post(
                    "/v1/admin/tenants",
                    json={"name": "pooled", "tier": "standard"},
                    headers=ADMIN,
                )
                assert made.status_code == 201, made.text
                tenant = made.json()
                credited = client.post(
                    f"/v1/admin/tenants/{tenant['id']}/credits",
                    json={"amount": 50_000_000, "reference": "pgbouncer"},
                    headers=ADMIN,
                )
                assert credited.status_code == 201, credited.text
                key = {"Authorization": f"Bearer {tenant['api_key']}"}
                batch = [{"to": "+14155552671", "body": f"b{i}"} for i in range(300)]
                sent = client.post("/v1/messages/batch", json={"messages": batch}, headers=key)
                assert sent.status_code == 202, sent.text
                for i in range(50):  # single sends: the coalesced accept
                    one = client.post(
                        "/v1/messages", json={"to": "+447400123456", "body": f"s{i}"}, headers=key
                    )
                    assert one.status_code == 202, one.text

            with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as conn:

                def delivered() -> bool:
                    row = conn.execute(
                        "SELECT count(*) FILTER (WHERE status = 'delivered') AS d,"
                        " count(*) AS n FROM messages"
                    ).fetchone()
                    assert row is not None
                    return row["d"] == row["n"] == 350

                _eventually(delivered, procs)
                # The API and both workers hold their pools through the pooler.
                database = urlsplit(db_url).path.lstrip("/")
                assert pgbouncer.clients(listen, pg_server.password, database) >= 3
                assert conn.execute("SELECT * FROM smsgw_ledger_violations_v1()").fetchall() == []
            time.sleep(2)  # PgBouncer's statistics are refreshed every second
            after = pgbouncer.stats(listen, pg_server.password)
            assert after["total_xact_count"] - before["total_xact_count"] > 100
        finally:
            processes.stop_all(procs, timeout=20)
            for log in tmp_path.glob("*.log"):
                text = log.read_text(errors="replace")
                assert "prepared statement" not in text, (log.name, text[-3000:])


def _eventually(check, procs, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            assert proc.poll() is None, "a process exited"
        with contextlib.suppress(psycopg.OperationalError):
            if check():
                return
        time.sleep(0.2)
    raise AssertionError("not all messages were delivered in time")
