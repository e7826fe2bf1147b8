"""Single sends that arrive together are accepted in one call (core/coalesce.py,
smsgw_accept_sends_v3), and each still gets the answer a call of its own would give."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import PoolClosed

from core import accept, single_send, submission, tenants
from core.coalesce import SendCoalescer
from core.errors import InsufficientCredit, RateLimited, RecipientOptedOut
from core.idempotency import Accepted
from core.submission import SendRequest
from core.tenants import Tenant
from db import Row
from db.pool import open_pool
from jobs.scheduler import ProcrastinateScheduler
from tests import support
from tests.support import VALID_TO

PRICE = 7_900
TASK = ProcrastinateScheduler().task


class CountingCoalescer(SendCoalescer):
    """Records how many sends each database call carried."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[int] = []

    async def _accept(self, sends: list[Any]) -> list[Row]:
        self.calls.append(len(sends))
        return await super()._accept(sends)


async def _tenant(conn, api, admin_headers, **fields) -> tuple[Tenant, uuid.UUID]:
    handle = await support.make_tenant(api, admin_headers, **fields)
    key_id, tenant = await tenants.authenticate_key(conn, api_key=handle.api_key)
    return tenant, key_id


async def _send(sends: SendCoalescer, tenant: Tenant, key_id: uuid.UUID | None, **fields):
    request = SendRequest(**{"to": VALID_TO, "body": "hello", **fields})
    return await single_send.accept_together(sends, tenant=tenant, request=request, key_id=key_id)


async def test_one_call_answers_each_send_as_its_own_call_would(api, admin_headers, conn, pool):
    rich, rich_key = await _tenant(conn, api, admin_headers, credit=100 * PRICE, name="rich")
    short, short_key = await _tenant(conn, api, admin_headers, credit=2 * PRICE, name="short")
    limited, limited_key = await _tenant(
        conn, api, admin_headers, credit=100 * PRICE, name="limited", rate_limit_mps=1
    )
    stopped, stopped_key = await _tenant(conn, api, admin_headers, credit=100 * PRICE, name="stop")
    await conn.execute(
        "INSERT INTO suppressions (tenant_id, recipient, number, source) "
        "VALUES (%s, %s, '*', 'api')",
        (stopped.id, VALID_TO),
    )
    # All arrive before the first call starts: they go together.
    sends = CountingCoalescer(pool, task=TASK, calls=1, max_sends=100)
    results = await asyncio.gather(
        _send(sends, rich, rich_key, body="first"),
        *(_send(sends, short, short_key) for _ in range(3)),
        *(_send(sends, limited, limited_key) for _ in range(2)),
        _send(sends, stopped, stopped_key),
        _send(sends, rich, uuid.uuid4()),  # a key this tenant does not have: stale
        *(_send(sends, rich, rich_key, body=f"rich {n}") for n in range(5)),
        return_exceptions=True,
    )
    assert sends.calls == [len(results)]
    kinds = [type(r).__name__ for r in results]
    assert kinds == [
        "Accepted",
        "Accepted",
        "Accepted",
        "InsufficientCredit",
        "Accepted",
        "RateLimited",
        "RecipientOptedOut",
        "StaleKey",
        *["Accepted"] * 5,
    ], kinds
    assert isinstance(results[3], InsufficientCredit)
    assert isinstance(results[5], RateLimited)
    assert results[5].retry_after == 1
    assert isinstance(results[6], RecipientOptedOut)
    accepted = [r for r in results if isinstance(r, Accepted)]
    ids = {str(r.body.id) for r in accepted}
    cursor = await conn.execute("SELECT id::text AS id, tenant_id, body FROM messages")
    rows = await cursor.fetchall()
    assert {row["id"] for row in rows} == ids
    held = {
        row["tenant_id"]: row["held"]
        for row in await (await conn.execute("SELECT tenant_id, held FROM balances")).fetchall()
    }
    assert held == {rich.id: 6 * PRICE, short.id: 2 * PRICE, limited.id: PRICE, stopped.id: 0}
    queued = await (await conn.execute("SELECT tenant_id FROM dispatch_queue")).fetchall()
    assert {row["tenant_id"] for row in queued} == {rich.id, short.id, limited.id}
    assert await support.violations(conn) == []


async def test_a_send_postgresql_refuses_fails_alone(api, admin_headers, conn, pool):
    tenant, key_id = await _tenant(conn, api, admin_headers, credit=100 * PRICE)
    sends = CountingCoalescer(pool, task=TASK, calls=1, max_sends=100)
    request = SendRequest(to=VALID_TO, body="fine")

    async def raw(body: str) -> Row:
        # Validation keeps NUL out of a real request; here one gets through to
        # PostgreSQL, which cannot store it in text.
        draft = submission.prepare(request, price_per_segment=PRICE, now_ms=accept.now_ms())
        (row,) = accept.rows_of([draft])
        send = {"tenant_id": tenant.id, "tier": "standard", "rate": None, "key_id": key_id}
        return await sends.accept({**send, **accept.tenant_settings(tenant), **row, "body": body})

    results = await asyncio.gather(
        raw("first"), raw("a"), raw("b\x00c"), raw("d"), return_exceptions=True
    )
    assert [r["outcome"] if isinstance(r, dict) else "error" for r in results] == [
        "accepted",
        "accepted",
        "error",
        "accepted",
    ]
    # The call of four failed as a whole, then each of its sends went alone.
    assert sends.calls == [4, 1, 1, 1, 1]
    cursor = await conn.execute("SELECT body FROM messages ORDER BY body")
    assert [row["body"] for row in await cursor.fetchall()] == ["a", "d", "first"]
    assert await support.violations(conn) == []


async def test_concurrent_sends_of_many_tenants_share_calls_and_credit_holds(
    api, admin_headers, conn, pool
):
    handles = [
        await support.make_tenant(api, admin_headers, credit=10 * PRICE, name=f"t{n}")
        for n in range(8)
    ]
    keyed = [await tenants.authenticate_key(conn, api_key=h.api_key) for h in handles]
    sends = CountingCoalescer(pool, task=TASK, calls=2, max_sends=16)
    results = await asyncio.gather(
        *(_send(sends, tenant, key_id) for key_id, tenant in keyed for _ in range(15)),
        return_exceptions=True,
    )
    for n in range(8):
        mine = results[n * 15 : (n + 1) * 15]
        assert sum(isinstance(r, Accepted) for r in mine) == 10
        assert sum(isinstance(r, InsufficientCredit) for r in mine) == 5
    assert max(sends.calls) == 16
    assert len(sends.calls) < len(results) / 4
    cursor = await conn.execute("SELECT min(available) AS low, sum(held) AS held FROM balances")
    row = await cursor.fetchone()
    assert row == {"low": 0, "held": 80 * PRICE}
    assert await support.violations(conn) == []


async def test_a_call_that_fails_answers_each_of_its_sends_with_the_error(
    api, admin_headers, conn, settings
):
    tenant, key_id = await _tenant(conn, api, admin_headers, credit=100 * PRICE)
    closed = await open_pool(settings.database_url, min_size=1, max_size=1)
    await closed.close()
    sends = SendCoalescer(closed, task=TASK, calls=1, max_sends=100)
    results = await asyncio.wait_for(
        asyncio.gather(*(_send(sends, tenant, key_id) for _ in range(5)), return_exceptions=True),
        timeout=10,
    )
    assert [type(r) for r in results] == [PoolClosed] * 5
    assert (await support.stored(conn))["messages"] == 0
    assert await support.violations(conn) == []


async def test_a_call_writes_a_queue_row_only_when_the_tenant_is_not_due_as_early(
    api, admin_headers, conn, pool
):
    tenant, key_id = await _tenant(conn, api, admin_headers, credit=100 * PRICE)
    sends = SendCoalescer(pool, task=TASK, calls=1, max_sends=100)

    async def queue_row() -> Row:
        cursor = await conn.execute(
            "SELECT xmin::text AS version, due_at FROM dispatch_queue WHERE tenant_id = %s",
            (tenant.id,),
        )
        row = await cursor.fetchone()
        assert row is not None
        return row

    later = datetime.now(UTC) + timedelta(hours=1)
    await _send(sends, tenant, key_id, send_at=later)
    scheduled = await queue_row()
    assert scheduled["due_at"] >= later - timedelta(seconds=1)
    # Due now: the row is brought forward.
    await _send(sends, tenant, key_id)
    due = await queue_row()
    assert due["due_at"] <= datetime.now(UTC)
    # Already due as early: the row is left as it is, not written again.
    await _send(sends, tenant, key_id)
    assert await queue_row() == due
    assert await support.violations(conn) == []
