"""Tiers are separate queues, a tenant's delivery pace holds, and a small tenant is not
stuck behind a large one's backlog."""

from __future__ import annotations

from tests import support, workers

# A VIP worker pool plus what every deployment runs somewhere: receipts and upkeep.
VIP_POOL = ["vip", "receipts", "maintenance"]
SENT_OF_TENANT = "SELECT count(*) AS n FROM messages WHERE tenant_id = %s AND sent_at IS NOT NULL"


async def test_a_vip_worker_pool_serves_vip_tenants_only(api, conn, settings, admin_headers):
    vip = await support.make_tenant(api, admin_headers, credit=10_000_000, tier="vip", name="v")
    standard = await support.make_tenant(api, admin_headers, credit=10_000_000, name="s")
    await support.send_batch(api, standard, 500)
    sent = await support.send(api, vip)
    async with workers.in_process(settings, queues=VIP_POOL):
        await workers.eventually(
            lambda: support.count(
                conn,
                "SELECT count(*) AS n FROM messages WHERE id = %s AND status = 'delivered'",
                sent.json()["id"],
            )
        )
        # The standard flood is not this pool's business: it has not touched it.
        assert (
            await support.count(
                conn,
                "SELECT count(*) AS n FROM messages WHERE tenant_id = %s AND status = 'queued'",
                standard.id,
            )
            == 500
        )


async def test_a_tier_change_moves_the_waiting_work_to_the_new_pool(
    api, conn, settings, admin_headers
):
    tenant = await support.make_tenant(api, admin_headers, credit=10_000_000, name="up")
    await support.send_batch(api, tenant, 50)
    patched = await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"tier": "vip"}, headers=admin_headers
    )
    assert patched.status_code == 200
    assert patched.json()["tier"] == "vip"
    async with workers.in_process(settings, queues=VIP_POOL):
        await workers.eventually(
            lambda: support.count(
                conn, "SELECT count(*) AS n FROM messages WHERE status = 'delivered'"
            ),
        )
        assert (
            await support.count(
                conn, "SELECT count(*) AS n FROM messages WHERE status = 'delivered'"
            )
            <= 50
        )

        async def all_delivered():
            return (
                await support.count(
                    conn, "SELECT count(*) AS n FROM messages WHERE status = 'delivered'"
                )
                == 50
            )

        await workers.eventually(all_delivered)


async def test_a_small_tenant_is_served_while_a_large_backlog_drains(
    api, conn, settings, admin_headers
):
    big = await support.make_tenant(api, admin_headers, credit=10**12, name="big")
    small = await support.make_tenant(api, admin_headers, credit=10_000_000, name="small")
    await support.send_batch(api, big, 20_000)
    small_ids = [(await support.send(api, small, body=f"s{i}")).json()["id"] for i in range(5)]
    async with workers.in_process(settings, dispatch_batch_size=200):

        async def small_sent():
            return await support.count(conn, SENT_OF_TENANT, small.id) == 5

        await workers.eventually(small_sent, timeout=60)
        big_sent = await support.count(conn, SENT_OF_TENANT, big.id)
    # The small tenant's turn came within the first turns, not after 20,000 messages.
    assert big_sent < 20_000 / 2
    cursor = await conn.execute(
        "SELECT max(attempts) AS a FROM messages WHERE id = ANY(%s::uuid[])", (small_ids,)
    )
    assert (await cursor.fetchone())["a"] == 1


async def test_a_tenants_delivery_pace_holds(api, conn, settings, admin_headers):
    tenant = await support.make_tenant(
        api, admin_headers, credit=10_000_000, rate_limit_mps=20, name="paced"
    )
    await support.send_batch(api, tenant, 60)
    async with workers.in_process(settings):

        async def all_sent():
            return (
                await support.count(
                    conn, "SELECT count(*) AS n FROM messages WHERE sent_at IS NOT NULL"
                )
                == 60
            )

        await workers.eventually(all_sent, timeout=60)
    # When each message was claimed for sending (its `sending` event).
    cursor = await conn.execute(
        "SELECT extract(epoch FROM at) AS t FROM message_events"
        " WHERE status = 'sending' ORDER BY at"
    )
    times = [float(row["t"]) for row in await cursor.fetchall()]
    assert len(times) == 60
    # A one-second bucket: a burst of 20, then 20 segments a second.
    support.assert_token_bucket(times, rate=20, burst=20)
    assert times[-1] - times[0] >= (60 - 20) / 20 * 0.9
    assert (
        await support.count(conn, "SELECT count(*) AS n FROM messages WHERE status = 'failed'") == 0
    )


async def test_many_small_tenants_share_one_turn_and_leave_no_queue_behind(
    api, conn, settings, admin_headers
):
    tenants = [
        await support.make_tenant(api, admin_headers, credit=100_000, name=f"small-{i}")
        for i in range(20)
    ]
    for tenant in tenants:
        assert (await support.send(api, tenant)).status_code == 202
    # Twenty tenants waiting, one turn of their tier queued for all of them: the job count
    # follows the load, not the number of tenants.
    assert await support.count(conn, "SELECT count(*) AS n FROM dispatch_queue") == 20
    assert (
        await support.count(
            conn,
            "SELECT count(*) AS n FROM procrastinate_jobs"
            " WHERE task_name = 'smsgw.dispatch' AND status = 'todo'",
        )
        == 1
    )

    async def all_sent():
        return await support.count(
            conn, "SELECT count(*) AS n FROM messages WHERE sent_at IS NOT NULL"
        )

    async with workers.in_process(settings):
        await workers.eventually(lambda: _at_least(all_sent, 20))
        # Nothing is left to send, so no tenant stays queued for a turn.
        await workers.eventually(
            lambda: support.count(conn, "SELECT (count(*) = 0)::int AS n FROM dispatch_queue")
        )
    assert await support.violations(conn) == []


async def _at_least(count, wanted):
    return (await count()) >= wanted or None
