"""Status callbacks reach the tenant's endpoint, signed, retried, recorded."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from core import callbacks
from tests import httpd, support, workers


async def _callback_rows(conn, message_id):
    cursor = await conn.execute(
        "SELECT payload, attempts, last_status_code, last_error, delivered_at, next_attempt_at"
        " FROM callbacks WHERE message_id = %s ORDER BY created_at",
        (message_id,),
    )
    return await cursor.fetchall()


async def test_each_status_change_is_posted_signed_with_the_tenants_secret(
    api, conn, settings, tenant
):
    with httpd.serve() as endpoint:
        sent = await support.send(api, tenant, callback_url=endpoint.url, client_reference="o-1")
        message_id = sent.json()["id"]
        async with workers.in_process(settings):

            async def three_received():
                return len(endpoint.received) >= 3

            await workers.eventually(three_received, timeout=30)
        statuses = []
        for request in endpoint.received:
            assert request.path == "/hooks/sms"
            assert request.headers["content-type"] == "application/json"
            header = request.headers["x-smsgw-signature"]
            assert callbacks.verify(
                tenant.webhook_secret, request.body, header, now=int(time.time())
            )
            assert not callbacks.verify(
                "another-secret", request.body, header, now=int(time.time())
            )
            body = json.loads(request.body)
            assert set(body) == {
                "id",
                "status",
                "error_code",
                "segments",
                "price",
                "client_reference",
                "timestamp",
            }
            assert body["id"] == message_id
            assert body["client_reference"] == "o-1"
            assert body["segments"] == 1
            assert body["price"] == 7_900
            statuses.append(body["status"])
        assert sorted(statuses) == ["delivered", "sending", "sent"]
    rows = await _callback_rows(conn, message_id)
    assert all(row["delivered_at"] is not None and row["last_status_code"] == 200 for row in rows)


async def test_a_failing_endpoint_is_retried_until_it_answers(api, conn, settings, tenant):
    # The first three requests fail with 500, then the endpoint recovers.
    with httpd.serve(lambda n: (500, 0.0) if n < 3 else (204, 0.0)) as endpoint:
        sent = await support.send(api, tenant, callback_url=endpoint.url)
        message_id = sent.json()["id"]
        async with workers.in_process(settings):

            async def all_delivered():
                rows = await _callback_rows(conn, message_id)
                return len(rows) == 3 and all(r["delivered_at"] for r in rows)

            await workers.eventually(all_delivered, timeout=30)
    rows = await _callback_rows(conn, message_id)
    assert sum(row["attempts"] for row in rows) == 6  # 3 failures + 3 successes
    assert {row["last_status_code"] for row in rows} == {204}
    assert len(endpoint.received) == 6


async def test_a_hanging_endpoint_does_not_hold_up_delivery(api, conn, settings, admin_headers):
    slow = await support.make_tenant(api, admin_headers, credit=10_000_000, name="slow")
    other = await support.make_tenant(api, admin_headers, credit=10_000_000, name="other")
    with httpd.serve(lambda n: (200, 30.0)) as hanging:
        for _ in range(5):
            await support.send(api, slow, callback_url=hanging.url)
        for _ in range(5):
            await support.send(api, other)
        async with workers.in_process(settings, callback_timeout_seconds=0.5):

            async def everyone_delivered():
                cursor = await conn.execute(
                    "SELECT count(*) AS n FROM messages WHERE status = 'delivered'"
                )
                return (await cursor.fetchone())["n"] == 10

            await workers.eventually(everyone_delivered, timeout=30)

            async def timeouts_recorded():
                cursor = await conn.execute(
                    "SELECT count(*) AS n FROM callbacks"
                    " WHERE last_error = 'ReadTimeout' AND delivered_at IS NULL"
                    " AND next_attempt_at IS NOT NULL"
                )
                return (await cursor.fetchone())["n"] >= 5

            await workers.eventually(timeouts_recorded, timeout=30)


async def test_many_callbacks_in_parallel_lanes_are_each_posted_once(
    api, conn, settings, admin_headers
):
    tenant = await support.make_tenant(api, admin_headers, credit=100_000_000)
    with httpd.serve() as endpoint:
        batch = [
            {"to": support.VALID_TO, "body": f"m{i}", "callback_url": endpoint.url}
            for i in range(600)
        ]
        accepted = await api.post(
            "/v1/messages/batch", json={"messages": batch}, headers=tenant.headers
        )
        assert accepted.status_code == 202, accepted.text
        async with workers.in_process(settings):

            async def all_delivered():
                pending = await support.count(
                    conn,
                    "SELECT count(*) AS n FROM callbacks WHERE tenant_id = %s"
                    " AND delivered_at IS NULL",
                    tenant.id,
                )
                made = await support.count(
                    conn, "SELECT count(*) AS n FROM callbacks WHERE tenant_id = %s", tenant.id
                )
                return made == 1800 and pending == 0

            await workers.eventually(all_delivered, timeout=90)
        posted = [json.loads(request.body) for request in endpoint.received]
    # Three changes a message after acceptance (sending, sent, delivered), each posted
    # once, however the batches of the outbox were split between the lanes.
    assert len(posted) == 1800
    assert len({(body["id"], body["status"]) for body in posted}) == 1800


async def test_a_backlog_is_worked_by_more_runs_than_the_periodic_one(
    conn, db_url, tenant, tmp_path
):
    # 2,000 callbacks waiting: the periodic run finds a full batch and asks for more runs,
    # jobs any worker on the callbacks queue takes (one run is one process's event loop,
    # and the periodic job is one run a second however many workers there are).
    with httpd.serve() as endpoint:
        await conn.execute(
            "INSERT INTO callbacks (tenant_id, message_id, url, payload, kind)"
            " SELECT %s, gen_random_uuid(), %s,"
            "        jsonb_build_object('id', g::text, 'status', 'delivered'), 'status'"
            "   FROM generate_series(1, 2000) g",
            (tenant.id, endpoint.url),
        )
        log = tmp_path / "worker.log"
        with workers.process(db_url, log_path=log, callback_jobs=3):

            async def all_delivered():
                return (
                    await support.count(
                        conn,
                        "SELECT count(*) AS n FROM callbacks WHERE tenant_id = %s"
                        " AND delivered_at IS NULL",
                        tenant.id,
                    )
                    == 0
                )

            await workers.eventually(all_delivered, timeout=60)

            async def all_logged():
                # A run writes its line when its lanes are done, after its last batch
                # was recorded: wait for the lines before the worker is stopped.
                runs = _delivered_lines(log)
                return runs if sum(run["delivered"] for run in runs) >= 2000 else None

            runs = await workers.eventually(all_logged, timeout=30)
        posted = [json.loads(request.body)["id"] for request in endpoint.received]
    # Each posted once, however the runs and their lanes split the outbox.
    assert sorted(posted, key=int) == [str(n) for n in range(1, 2001)]
    assert {run["run"] for run in runs} == {"periodic", "more"}, runs
    assert sum(run["delivered"] for run in runs) == 2000


def _delivered_lines(log: Path) -> list[dict[str, Any]]:
    """The worker's `callbacks.delivered` lines so far (whole lines only)."""
    whole = log.read_text().split("\n")[:-1]
    return [json.loads(line) for line in whole if '"callbacks.delivered"' in line]
