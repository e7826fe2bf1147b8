"""The delivery engine end to end: a worker, the simulator, a real PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from tests import support, workers

TERMINAL = {"delivered", "undelivered", "failed", "expired", "canceled"}


async def _statuses(conn, tenant_id):
    cursor = await conn.execute(
        "SELECT status, count(*) AS n FROM messages WHERE tenant_id = %s GROUP BY status",
        (tenant_id,),
    )
    return {row["status"]: row["n"] for row in await cursor.fetchall()}


async def _all_terminal(conn, tenant_id, expected):
    statuses = await _statuses(conn, tenant_id)
    done = sum(n for status, n in statuses.items() if status in TERMINAL)
    return statuses if done == expected else None


async def test_a_thousand_messages_with_failures_all_settle_and_bill_exactly(
    api, conn, settings, admin_headers
):
    tenant = await support.make_tenant(api, admin_headers, credit=10_000_000)
    batch = [{"to": support.VALID_TO, "body": f"message {i}"} for i in range(1000)]
    accepted = await api.post(
        "/v1/messages/batch", json={"messages": batch}, headers=tenant.headers
    )
    assert accepted.status_code == 202, accepted.text
    assert len(accepted.json()["messages"]) == 1000

    async with workers.in_process(
        settings,
        simulator_transient_rate=0.30,
        simulator_permanent_rate=0.05,
        simulator_delivery_rate=0.9,
    ):
        statuses = await workers.eventually(
            lambda: _all_terminal(conn, tenant.id, 1000), timeout=120
        )

    assert set(statuses) <= {"delivered", "undelivered", "failed"}
    assert statuses.get("failed", 0) > 0
    assert statuses.get("delivered", 0) > 0
    cursor = await conn.execute(
        "SELECT count(*) FILTER (WHERE attempts > 1) AS retried, max(attempts) AS most,"
        " sum(price) FILTER (WHERE status IN ('sent', 'delivered', 'undelivered')) AS billable"
        " FROM messages WHERE tenant_id = %s",
        (tenant.id,),
    )
    facts = await cursor.fetchone()
    assert facts["retried"] > 200  # 30% transient: a good share needed more than one try
    balance = await support.balance(api, tenant)
    assert balance["captured"] == facts["billable"]
    assert balance["held"] == 0
    assert balance["available"] == 10_000_000 - facts["billable"]
    # A transient failure is retried, never billed: one capture per billable message.
    cursor = await conn.execute(
        "SELECT kind, count(*) AS n FROM ledger_message_entries WHERE tenant_id = %s GROUP BY kind",
        (tenant.id,),
    )
    kinds = {row["kind"]: row["n"] for row in await cursor.fetchall()}
    assert kinds["hold"] == 1000
    assert kinds["capture"] == statuses.get("delivered", 0) + statuses.get("undelivered", 0)
    assert kinds["release"] == statuses["failed"]


async def test_history_records_every_transition_with_timestamps(api, conn, settings, tenant):
    sent = await support.send(api, tenant)
    message_id = sent.json()["id"]
    async with workers.in_process(settings):
        await workers.eventually(lambda: _all_terminal(conn, tenant.id, 1))
    got = (await api.get(f"/v1/messages/{message_id}", headers=tenant.headers)).json()
    assert got["status"] == "delivered"
    assert got["provider"] == "simulator"
    assert got["provider_message_id"].startswith("sim-")
    assert got["attempts"] == 1
    assert got["error_code"] is None
    assert got["created_at"] <= got["sent_at"] <= got["delivered_at"]
    cursor = await conn.execute(
        "SELECT status, at FROM message_events WHERE message_id = %s ORDER BY at", (message_id,)
    )
    history = await cursor.fetchall()
    assert [row["status"] for row in history] == ["queued", "sending", "sent", "delivered"]


async def test_a_scheduled_message_waits_for_its_send_at(api, conn, settings, tenant):
    send_at = datetime.now(UTC) + timedelta(seconds=2)
    sent = await support.send(api, tenant, send_at=send_at.isoformat())
    assert sent.json()["status"] == "scheduled"
    message_id = sent.json()["id"]
    async with workers.in_process(settings):
        await workers.eventually(lambda: _all_terminal(conn, tenant.id, 1))
    got = (await api.get(f"/v1/messages/{message_id}", headers=tenant.headers)).json()
    assert datetime.fromisoformat(got["sent_at"]) >= send_at
    cursor = await conn.execute(
        "SELECT status FROM message_events WHERE message_id = %s ORDER BY at", (message_id,)
    )
    assert [r["status"] for r in await cursor.fetchall()] == [
        "scheduled",
        "queued",
        "sending",
        "sent",
        "delivered",
    ]


async def test_permanent_failure_fails_at_once_and_releases_the_hold(api, conn, settings, tenant):
    sent = await support.send(api, tenant)
    async with workers.in_process(settings, simulator_permanent_rate=1.0):
        await workers.eventually(lambda: _all_terminal(conn, tenant.id, 1))
    got = (await api.get(f"/v1/messages/{sent.json()['id']}", headers=tenant.headers)).json()
    assert got["status"] == "failed"
    assert got["attempts"] == 1
    assert got["error_code"] == "sim_rejected"
    assert await support.balance(api, tenant) == {
        "available": 10_000_000,
        "held": 0,
        "captured": 0,
        "currency": "USD",
    }


async def test_two_workers_never_send_a_message_twice(api, conn, settings, admin_headers):
    tenants = [
        await support.make_tenant(api, admin_headers, credit=10_000_000, name=f"t{i}")
        for i in range(3)
    ]
    for tenant in tenants:
        batch = [{"to": support.VALID_TO, "body": "hi"} for _ in range(300)]
        response = await api.post(
            "/v1/messages/batch", json={"messages": batch}, headers=tenant.headers
        )
        assert response.status_code == 202
    async with (
        workers.in_process(settings, dispatch_batch_size=50),
        workers.in_process(settings, dispatch_batch_size=50),
    ):

        async def all_done():
            cursor = await conn.execute(
                "SELECT count(*) AS n FROM messages WHERE status = 'delivered'"
            )
            return (await cursor.fetchone())["n"] == 900

        await workers.eventually(all_done, timeout=60)
    cursor = await conn.execute("SELECT attempts, count(*) AS n FROM messages GROUP BY attempts")
    assert Counter({r["attempts"]: r["n"] for r in await cursor.fetchall()}) == {1: 900}
    cursor = await conn.execute("SELECT count(*) AS n FROM message_events WHERE status = 'sending'")
    assert (await cursor.fetchone())["n"] == 900
