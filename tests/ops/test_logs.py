"""The logs of a real workload (`smsgw api` and `smsgw worker` processes, JSON logs):
every line is JSON with the request, tenant and message it is about, and none carries
an API key, a webhook secret, the admin token or a message body. At the default level an
idle gateway writes its start lines and nothing else; work done writes a line."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import psycopg

from app.observability import new_request_id
from smsgw import processes
from tests import httpd, support
from tests.conftest import ADMIN_TOKEN
from tests.workers import _env, eventually


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return processes.spawn(processes.smsgw_command(*args), env=env, log=log)


async def _until_ready(api: httpx.AsyncClient) -> None:
    await processes.await_http(str(api.base_url.join("/ready")), within=30)


async def test_a_workloads_logs_are_json_with_context_and_without_secrets(db_url, tmp_path):
    port = processes.free_port()
    env = _env(db_url, {"log_level": "DEBUG"})
    env["SMSGW_ADMIN_TOKEN"] = ADMIN_TOKEN
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    body = f"the secret body {uuid.uuid4().hex}"
    # The callback endpoint fails once, so a retry is logged with the message's id.
    with httpd.serve(lambda n: (500, 0.0) if n == 0 else (200, 0.0)) as hook:
        api_proc = _start(["api", "--port", str(port)], env, api_log)
        worker_proc = _start(["worker"], env, worker_log)
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as api:
                await _until_ready(api)
                admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                tenant = await support.make_tenant(api, admin, credit=1_000_000)
                sent = await support.send(api, tenant, body=body, callback_url=hook.url)
                assert sent.status_code == 202, sent.text
                message_id = sent.json()["id"]
                got = await api.get(f"/v1/messages/{message_id}", headers=tenant.headers)
                assert got.status_code == 200
                # A wrong key and a wrong admin token are refused (and must not be logged).
                wrong_key = tenant.api_key[:-4] + "abcd"
                refused = await api.get(
                    "/v1/balance", headers={"Authorization": f"Bearer {wrong_key}"}
                )
                assert refused.status_code == 401
                await api.get("/v1/admin/replication", headers={"Authorization": "Bearer x"})

                async def delivered_callbacks():
                    statuses = [json.loads(r.body)["status"] for r in hook.received]
                    return "delivered" in statuses

                await eventually(delivered_callbacks)
        finally:
            processes.stop(api_proc, timeout=20)
            processes.stop(worker_proc, timeout=20)

    lines = api_log.read_text().splitlines() + worker_log.read_text().splitlines()
    assert lines
    records = []
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert {"event", "level", "timestamp"} <= set(record), line
        records.append(record)
    text = "\n".join(lines)
    for secret in (tenant.api_key, wrong_key, tenant.webhook_secret, ADMIN_TOKEN, body):
        assert secret not in text
    # Not even the secret half of the key (which may itself hold "_": base64url).
    assert tenant.api_key.split("_", 2)[2] not in text

    requests = [r for r in records if r["event"] == "http.request"]
    assert all(r.get("request_id") for r in requests)
    assert len({r["request_id"] for r in requests}) == len(requests)
    tenant_requests = [r for r in requests if r["route"].startswith("/v1/messages")]
    assert tenant_requests
    assert all(r.get("tenant_id") == tenant.id for r in tenant_requests)
    read = next(r for r in requests if r["route"] == "/v1/messages/{message_id}")
    assert read["message_id"] == message_id
    failed_callback = next(r for r in records if r["event"] == "callback.failed")
    assert failed_callback["message_id"] == message_id
    assert failed_callback["tenant_id"] == tenant.id
    # procrastinate's per-job lines are written at DEBUG, and only at DEBUG.
    procrastinate = [r for r in records if r["logger"].startswith("procrastinate")]
    assert any(r["event"].startswith("Starting job smsgw.") for r in procrastinate)
    assert all(r["level"] == "debug" for r in procrastinate if "job smsgw." in r["event"])


async def test_at_info_only_refused_failed_or_slow_requests_are_logged(db_url, tmp_path):
    """A line per accepted send would repeat the messages table a billion times a day at
    the mission's peak: at INFO an answered send writes none, a refusal writes its line."""
    port = processes.free_port()
    env = _env(db_url, {"log_level": "INFO"})
    env["SMSGW_ADMIN_TOKEN"] = ADMIN_TOKEN
    api_log = tmp_path / "api.log"
    api_proc = _start(["api", "--port", str(port)], env, api_log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            await _until_ready(api)
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            tenant = await support.make_tenant(api, admin, credit=1_000_000)
            accepted = await support.send(api, tenant)
            assert accepted.status_code == 202, accepted.text
            invalid = await support.send(api, tenant, to="+1")
            assert invalid.status_code == 422
            unknown = await api.get("/v1/balance", headers={"Authorization": "Bearer smsgw_x"})
            assert unknown.status_code == 401
    finally:
        processes.stop(api_proc, timeout=20)
    records = [json.loads(line) for line in api_log.read_text().splitlines()]
    logged = {
        (r["route"], r["status"]): r["request_id"] for r in records if r["event"] == "http.request"
    }
    assert logged == {
        ("/v1/messages", 422): invalid.headers["x-request-id"],
        ("/v1/balance", 401): unknown.headers["x-request-id"],
    }


# What an api and a worker write as they start, by logger and the start of the line:
# granian's, the worker's own, procrastinate's worker start.
START_LINES = {
    ("_granian", "Starting granian"),
    ("_granian", "Listening at"),
    ("_granian", "Spawning worker"),
    ("_granian.serve", "Started worker"),
    ("smsgw.worker", "worker.started"),
    ("procrastinate.worker.worker", "Starting worker on queues"),
}


def _records(*logs: Path) -> list[dict]:
    return [json.loads(line) for log in logs for line in log.read_text().splitlines()]


async def _periodic_jobs_ran(conn: psycopg.AsyncConnection, *, seconds: int) -> None:
    """Until the receipts and callbacks jobs (every second) have been deferred for
    ``seconds`` more seconds and have run: a successful job is deleted, so at most the
    latest of each is left, and none failed."""

    async def deferred() -> dict[str, int]:
        cursor = await conn.execute(
            "SELECT periodic_id, max(defer_timestamp) FROM procrastinate_periodic_defers"
            " WHERE periodic_id IN ('receipts', 'callbacks') GROUP BY periodic_id"
        )
        return dict(await cursor.fetchall())

    first = await eventually(deferred)

    async def ran():
        latest = await deferred()
        if any(latest.get(key, 0) < first[key] + seconds for key in ("receipts", "callbacks")):
            return False
        cursor = await conn.execute(
            "SELECT status, count(*) FROM procrastinate_jobs"
            " WHERE task_name IN ('smsgw.apply_receipts', 'smsgw.deliver_callbacks')"
            " GROUP BY status"
        )
        left = dict(await cursor.fetchall())
        assert "failed" not in left, left
        return sum(left.values()) <= 2

    await eventually(ran)


async def test_an_idle_gateway_writes_its_start_lines_only_and_work_writes_a_line(db_url, tmp_path):
    """At INFO, procrastinate's lines for each run of the periodic jobs are not written;
    a run that did something writes one line with its counts."""
    port = processes.free_port()
    env = _env(db_url, {"log_level": "INFO"})
    env["SMSGW_ADMIN_TOKEN"] = ADMIN_TOKEN
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    with httpd.serve() as hook:
        api_proc = _start(["api", "--port", str(port)], env, api_log)
        worker_proc = _start(["worker"], env, worker_log)
        try:
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api,
                await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn,
            ):
                await _until_ready(api)
                await _periodic_jobs_ran(conn, seconds=3)
                idle = _records(api_log, worker_log)
                idle_worker_lines = len(_records(worker_log))

                admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                tenant = await support.make_tenant(api, admin, credit=1_000_000)
                sent = await support.send(api, tenant, callback_url=hook.url)
                assert sent.status_code == 202, sent.text

                async def did_work():
                    done = _total(_records(worker_log), "receipts.applied", "applied")
                    return done and _total(_records(worker_log), "callbacks.delivered", "delivered")

                await eventually(did_work)
                worked = _records(worker_log)[idle_worker_lines:]
        finally:
            processes.stop(api_proc, timeout=20)
            processes.stop(worker_proc, timeout=20)

    for record in idle:
        assert record["level"] == "info", record
        assert any(
            record["logger"] == logger and record["event"].startswith(start)
            for logger, start in START_LINES
        ), record
    assert len(idle) <= len(START_LINES), idle

    assert _total(worked, "dispatch.turn", "claimed") == 1
    assert _total(worked, "receipts.applied", "applied") == 1
    assert _total(worked, "callbacks.delivered", "delivered") >= 1
    assert all(r["level"] == "info" for r in worked), worked
    assert not [r for r in worked if r["logger"].startswith("procrastinate")], worked


def _total(records: list[dict], event: str, field: str) -> int:
    return sum(r[field] for r in records if r["event"] == event)


def test_request_ids_differ_between_forked_server_processes():
    """granian forks its worker processes from one that imported the app: each must draw
    its own request-id prefix, or two processes would hand out the same ids."""
    parent = new_request_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    assert child != parent
    assert child[:16] != parent[:16]
    assert new_request_id()[:16] == parent[:16]
