"""The ingest limit: requests per second per tenant, across every API process."""

from __future__ import annotations

import asyncio

import httpx

from app.factory import create_app
from tests import support


async def _tenant(api, admin_headers, rate):
    return await support.make_tenant(
        api, admin_headers, credit=10_000_000, rate_limit_mps=rate, name="limited"
    )


async def test_over_the_limit_is_429_with_retry_after_and_leaves_nothing(api, conn, admin_headers):
    tenant = await _tenant(api, admin_headers, 3)
    answers = [await support.send(api, tenant) for _ in range(6)]
    assert [a.status_code for a in answers[:3]] == [202, 202, 202]
    refused = [a for a in answers[3:] if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    for answer in refused:
        support.assert_problem(answer, 429, "rate_limited")
        assert int(answer.headers["Retry-After"]) >= 1
    accepted = sum(a.status_code == 202 for a in answers)
    cursor = await conn.execute("SELECT count(*) AS n FROM messages")
    assert (await cursor.fetchone())["n"] == accepted
    assert (await support.balance(api, tenant))["held"] == accepted * 7_900
    # The bucket refills at the rate: after the wait it says, sends go through again.
    await asyncio.sleep(int(refused[-1].headers["Retry-After"]))
    assert (await support.send(api, tenant)).status_code == 202


async def test_a_batch_is_one_request_and_an_unlimited_tenant_is_never_refused(api, admin_headers):
    limited = await _tenant(api, admin_headers, 1)
    batch = {"messages": [{"to": support.VALID_TO, "body": "b"}] * 50}
    first = await api.post("/v1/messages/batch", json=batch, headers=limited.headers)
    assert first.status_code == 202
    assert len(first.json()["messages"]) == 50
    # Fifty messages cost one token: the next requests right after find the bucket empty.
    more = await asyncio.gather(
        *(api.post("/v1/messages/batch", json=batch, headers=limited.headers) for _ in range(4))
    )
    refused = [r for r in more if r.status_code == 429]
    assert refused
    support.assert_problem(refused[0], 429, "rate_limited")
    free = await support.make_tenant(api, admin_headers, credit=10_000_000, name="free")
    answers = await asyncio.gather(*(support.send(api, free) for _ in range(30)))
    assert {a.status_code for a in answers} == {202}


async def test_the_limit_holds_across_api_processes(api, settings, pool, admin_headers):
    tenant = await _tenant(api, admin_headers, 5)
    # A second, independent app instance with its own pool: another API process.
    other_app = create_app(settings)
    async with other_app.lifespan():
        transport = httpx.ASGITransport(app=other_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://second") as other:
            answers = await asyncio.gather(
                *(support.send(client, tenant) for client in [api, other] * 10)
            )
    accepted = sum(a.status_code == 202 for a in answers)
    # 5 requests/s with a one-second bucket: 20 requests in well under a second get at
    # most the bucket plus what refilled meanwhile.
    assert 5 <= accepted <= 8
    assert {a.status_code for a in answers} == {202, 429}


async def test_changing_the_limit_takes_effect_at_once(api, admin_headers):
    tenant = await _tenant(api, admin_headers, 1)
    limited = await asyncio.gather(*(support.send(api, tenant) for _ in range(5)))
    assert 429 in {a.status_code for a in limited}
    patched = await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"rate_limit_mps": None}, headers=admin_headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["rate_limit_mps"] is None
    answers = await asyncio.gather(*(support.send(api, tenant) for _ in range(10)))
    assert {a.status_code for a in answers} == {202}
