"""Receipts posted by an HTTP provider: authenticated, idempotent, and early ones wait
for their message instead of being lost."""

from __future__ import annotations

import json
import uuid

from core import receipts
from db import dispatch as dispatch_db
from tests import support, two_way


async def _sent_message(api, conn, tenant, provider_message_id):
    """A message the provider `agg` accepted under ``provider_message_id``."""
    sent = await support.send(api, tenant)
    tenant_id = uuid.UUID(tenant.id)
    async with conn.transaction():
        turn = await dispatch_db.turn_tenants(conn, tier="standard", limit=100)
        mine = [row for row in turn if row["tenant_id"] == tenant_id]
        rows = await dispatch_db.claim_candidates(conn, tenants=mine, per_tenant=1)
        claimed = await dispatch_db.mark_sending(
            conn,
            keys=[(rows[0]["created_at"], rows[0]["id"])],
            providers=["agg"],
            lease_seconds=60,
        )
        await dispatch_db.settle(
            conn,
            results=[
                {
                    "id": claimed[0]["id"],
                    "created_at": claimed[0]["created_at"],
                    "attempts": claimed[0]["attempts"],
                    "outcome": "sent",
                    "provider_message_id": provider_message_id,
                    "error_code": None,
                    "error_message": None,
                    "next_attempt_at": None,
                }
            ],
        )
    return sent.json()["id"]


async def test_a_signed_receipt_delivers_the_message_once(api, conn, pool, admin_headers, tenant):
    await two_way.http_provider(api, admin_headers)
    message_id = await _sent_message(api, conn, tenant, "AGG-1")
    for _ in range(2):  # the provider retries its webhook: the second changes nothing
        response = await two_way.receipts(api, {"id": "AGG-1", "status": "delivered"})
        assert response.status_code == 202
        assert response.json() == {"accepted": 1}
        await receipts.apply_due(pool)
    message = await support.message(api, tenant, message_id)
    assert message["status"] == "delivered"
    assert message["delivered_at"] is not None
    cursor = await conn.execute(
        "SELECT count(*) AS n FROM message_events WHERE message_id = %s AND status = 'delivered'",
        (message_id,),
    )
    assert (await cursor.fetchone())["n"] == 1
    cursor = await conn.execute("SELECT count(*) AS n FROM receipts_inbox")
    assert (await cursor.fetchone())["n"] == 0


async def test_a_receipt_before_the_submit_response_waits_for_it(
    api, conn, pool, admin_headers, tenant
):
    await two_way.http_provider(api, admin_headers)
    early = await two_way.receipts(
        api,
        {"receipts": [{"id": "AGG-7", "status": "undelivered", "error_code": "absent_subscriber"}]},
    )
    assert early.status_code == 202
    counts = await receipts.apply_due(pool)
    assert counts["waiting"] == 1  # no message carries AGG-7 yet
    message_id = await _sent_message(api, conn, tenant, "AGG-7")
    await conn.execute("UPDATE receipts_inbox SET available_at = now()")
    await receipts.apply_due(pool)
    message = await support.message(api, tenant, message_id)
    assert message["status"] == "undelivered"
    assert message["error_code"] == "absent_subscriber"
    # Undelivered after sent stays billed: the provider carried it.
    assert (await support.balance(api, tenant))["captured"] == 7_900


async def test_a_receipt_for_a_sent_message_takes_effect_as_it_arrives(
    api, conn, admin_headers, tenant
):
    await two_way.http_provider(api, admin_headers)
    message_id = await _sent_message(api, conn, tenant, "AGG-5")
    response = await two_way.receipts(api, {"id": "AGG-5", "status": "delivered"})
    assert response.status_code == 202
    # No applier has run: the receipt was applied in the webhook's own transaction,
    # and never stored.
    assert (await support.message(api, tenant, message_id))["status"] == "delivered"
    assert await support.count(conn, "SELECT count(*) AS n FROM receipts_inbox") == 0


async def test_a_receipt_held_back_is_applied_when_due_and_not_before(
    api, conn, pool, admin_headers, tenant
):
    await two_way.http_provider(api, admin_headers)
    # Early: no message carries AGG-9 yet, so it waits in the inbox.
    assert (await two_way.receipts(api, {"id": "AGG-9", "status": "delivered"})).status_code == 202
    message_id = await _sent_message(api, conn, tenant, "AGG-9")
    await conn.execute("UPDATE receipts_inbox SET available_at = now() + interval '1 hour'")
    assert await receipts.apply_due(pool) == {"due": 0, "applied": 0, "consumed": 0, "waiting": 0}
    assert (await support.message(api, tenant, message_id))["status"] == "sent"
    await conn.execute("UPDATE receipts_inbox SET available_at = now()")
    counts = await receipts.apply_due(pool)
    assert (counts["applied"], counts["consumed"]) == (1, 1)
    assert (await support.message(api, tenant, message_id))["status"] == "delivered"


async def test_unsigned_or_wrongly_signed_receipts_are_refused(api, conn, admin_headers):
    await two_way.http_provider(api, admin_headers)
    raw = json.dumps({"id": "X", "status": "delivered"}).encode()
    attempts = [
        await api.post("/v1/providers/agg/dlr", content=raw),
        await two_way.receipts(api, {"id": "X", "status": "delivered"}, secret="guess"),
        await two_way.receipts(api, {"id": "X", "status": "delivered"}, provider="nobody"),
    ]
    for response in attempts:
        support.assert_problem(response, 401, "unauthorized")
    cursor = await conn.execute("SELECT count(*) AS n FROM receipts_inbox")
    assert (await cursor.fetchone())["n"] == 0


async def test_malformed_receipts_are_refused_and_store_nothing(api, conn, admin_headers):
    await two_way.http_provider(api, admin_headers)
    for body in ({"status": "delivered"}, {"id": "X", "status": "lost-in-space"}, []):
        response = await two_way.receipts(api, body)
        support.assert_problem(response, 422, "invalid_request")
    cursor = await conn.execute("SELECT count(*) AS n FROM receipts_inbox")
    assert (await cursor.fetchone())["n"] == 0
