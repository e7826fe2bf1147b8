"""Receipts applied while messages are still being sent, several batches side by side
(core/receipts.py, apply_for): every message ends once, its history whole, a callback per
change, and the ledger balanced (checked after every test by the db_url fixture)."""

from __future__ import annotations

from core import receipts
from jobs.app import QUEUES
from jobs.callbacks import QUEUE as CALLBACKS
from tests import support, workers

FINAL = ["delivered", "undelivered"]


async def _finished(conn, tenant_id, expected):
    n = await support.count(
        conn,
        "SELECT count(*) AS n FROM messages WHERE tenant_id = %s AND status = ANY(%s)",
        tenant_id,
        FINAL,
    )
    return n == expected


async def _histories(conn, tenant_id):
    cursor = await conn.execute(
        "SELECT message_id, array_agg(status ORDER BY at, status) AS statuses"
        "  FROM message_events WHERE tenant_id = %s GROUP BY message_id",
        (tenant_id,),
    )
    return {row["message_id"]: row["statuses"] for row in await cursor.fetchall()}


async def test_receipts_applied_while_dispatch_runs_end_every_message_once(
    api, conn, settings, admin_headers
):
    tenant = await support.make_tenant(api, admin_headers, credit=100_000_000)
    for first in (0, 750):
        batch = [
            {"to": support.VALID_TO, "body": f"m{i}", "callback_url": "https://hooks.example/s"}
            for i in range(first, first + 750)
        ]
        accepted = await api.post(
            "/v1/messages/batch", json={"messages": batch}, headers=tenant.headers
        )
        assert accepted.status_code == 202, accepted.text

    # Receipts come back 50 ms after each send, while the rest are still being sent;
    # callbacks stay in their outbox (no callback queue), where they can be counted.
    queues = [q for q in QUEUES if q != CALLBACKS]
    async with workers.in_process(settings, queues=queues, simulator_delivery_rate=0.8):
        await workers.eventually(lambda: _finished(conn, tenant.id, 1500), timeout=120)

    histories = await _histories(conn, tenant.id)
    assert len(histories) == 1500
    shapes = {tuple(statuses) for statuses in histories.values()}
    assert shapes == {
        ("queued", "sending", "sent", "delivered"),
        ("queued", "sending", "sent", "undelivered"),
    }
    # One callback per change after acceptance: sending, sent and the receipt's.
    cursor = await conn.execute(
        "SELECT message_id, count(*) AS n, count(DISTINCT payload->>'status') AS statuses"
        "  FROM callbacks WHERE tenant_id = %s GROUP BY message_id",
        (tenant.id,),
    )
    per_message = await cursor.fetchall()
    assert len(per_message) == 1500
    assert {(row["n"], row["statuses"]) for row in per_message} == {(3, 3)}
    assert await support.count(conn, "SELECT count(*) AS n FROM receipts_inbox") == 0
    balance = await support.balance(api, tenant)
    assert balance["held"] == 0
    cursor = await conn.execute(
        "SELECT sum(price) AS total FROM messages WHERE tenant_id = %s", (tenant.id,)
    )
    assert balance["captured"] == (await cursor.fetchone())["total"]


async def test_duplicate_receipts_in_parallel_lanes_apply_once(
    api, conn, pool, settings, admin_headers
):
    tenant = await support.make_tenant(api, admin_headers, credit=100_000_000)
    await support.send_batch(api, tenant, 1200)
    # Sent, with their receipts held back an hour in the inbox.
    held = [q for q in QUEUES if q != CALLBACKS]
    async with workers.in_process(settings, queues=held, simulator_dlr_delay_seconds=3600):
        await workers.eventually(lambda: _status_count(conn, tenant.id, "sent", 1200), timeout=120)
    # The provider sends every receipt three times; all are due now.
    await conn.execute(
        "INSERT INTO receipts_inbox (provider, provider_message_id, status, error_code,"
        "                            occurred_at, available_at)"
        " SELECT provider, provider_message_id, status, error_code, occurred_at, now()"
        "   FROM receipts_inbox, generate_series(1, 2)"
    )
    await conn.execute("UPDATE receipts_inbox SET available_at = now()")
    assert await support.count(conn, "SELECT count(*) AS n FROM receipts_inbox") == 3600

    totals = await receipts.apply_for(pool, seconds=60, lanes=4, limit=150)

    assert totals["due"] == 3600
    assert totals["applied"] == 1200  # a duplicate finds its message final already
    assert totals["consumed"] == 3600
    assert await support.count(conn, "SELECT count(*) AS n FROM receipts_inbox") == 0
    assert (
        await support.count(
            conn,
            "SELECT count(*) AS n FROM messages WHERE tenant_id = %s AND status = ANY(%s)",
            tenant.id,
            FINAL,
        )
        == 1200
    )
    histories = await _histories(conn, tenant.id)
    assert {tuple(s[-1:]) for s in histories.values()} <= {("delivered",), ("undelivered",)}
    assert all(len(s) == 4 for s in histories.values())


async def _status_count(conn, tenant_id, status, expected):
    n = await support.count(
        conn,
        "SELECT count(*) AS n FROM messages WHERE tenant_id = %s AND status = %s",
        tenant_id,
        status,
    )
    return n == expected


async def test_a_receipt_stamped_before_the_send_was_recorded_never_shows_it_delivered_earlier(
    api, conn, pool, settings, tenant
):
    sent = await support.send(api, tenant)
    message_id = sent.json()["id"]
    held = [q for q in QUEUES if q != CALLBACKS]
    async with workers.in_process(settings, queues=held, simulator_dlr_delay_seconds=3600):
        await workers.eventually(lambda: _status_count(conn, tenant.id, "sent", 1), timeout=60)
    # The carrier's clock is a minute behind ours.
    await conn.execute(
        "UPDATE receipts_inbox SET available_at = now(), occurred_at = now() - interval '1 min',"
        " status = 'delivered', error_code = NULL"
    )
    await receipts.apply_for(pool, seconds=10, lanes=1, limit=10)
    got = (await api.get(f"/v1/messages/{message_id}", headers=tenant.headers)).json()
    assert got["status"] == "delivered"
    assert got["created_at"] <= got["sent_at"] == got["delivered_at"]
