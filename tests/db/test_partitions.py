"""Daily partitions: created ahead, dropped after retention with the ledger rolled up,
and never dropped while they hold a message not yet settled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests import support, workers


async def _partitions(conn, parent):
    cursor = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = %s ORDER BY 1",
        (parent,),
    )
    return [row["relname"] for row in await cursor.fetchall()]


async def test_partitions_exist_ahead_for_every_partitioned_table(conn):
    today = datetime.now(UTC).date()
    for parent in (
        "messages",
        "message_events",
        "ledger_message_entries",
        "callbacks",
        "message_recipients",
    ):
        names = await _partitions(conn, parent)
        for ahead in range(7):
            day = (today + timedelta(days=ahead)).strftime("%Y%m%d")
            assert f"{parent}_{day}" in names, (parent, day)


async def test_retention_drops_settled_days_keeps_the_ledger_whole(api, conn, settings, tenant):
    for _ in range(5):
        await support.send(api, tenant)
    async with workers.in_process(settings):

        async def all_delivered():
            cursor = await conn.execute(
                "SELECT count(*) AS n FROM messages WHERE status = 'delivered'"
            )
            return (await cursor.fetchone())["n"] == 5

        await workers.eventually(all_delivered)
    before = await support.balance(api, tenant)
    today = datetime.now(UTC).date()
    # Retention reaching today (as it will, 40 days from now): today's days go.
    cursor = await conn.execute(
        "SELECT day, dropped, detail FROM smsgw_drop_partitions_v2(%s)", (today + timedelta(1),)
    )
    days = await cursor.fetchall()
    assert {(row["day"], row["dropped"]) for row in days} >= {(today, True)}
    assert f"messages_{today:%Y%m%d}" not in await _partitions(conn, "messages")
    # The recipients' index of the day (search by recipient) goes with its messages.
    assert f"message_recipients_{today:%Y%m%d}" not in await _partitions(conn, "message_recipients")
    cursor = await conn.execute(
        "SELECT holds, captures, releases FROM ledger_rollups WHERE tenant_id = %s AND day = %s",
        (tenant.id, today),
    )
    assert dict(await cursor.fetchone()) == {
        "holds": 5 * 7_900,
        "captures": 5 * 7_900,
        "releases": 0,
    }
    # The balance is untouched and the invariant (checked after the test) still holds.
    assert await support.balance(api, tenant) == before
    await conn.execute("SELECT smsgw_ensure_partitions_v2((now() AT TIME ZONE 'UTC')::date - 1, 8)")


async def test_a_day_with_unsettled_messages_is_kept(api, conn, tenant):
    await support.send(api, tenant)  # queued: no worker runs
    today = datetime.now(UTC).date()
    cursor = await conn.execute(
        "SELECT day, dropped, detail FROM smsgw_drop_partitions_v2(%s)", (today + timedelta(1),)
    )
    kept = {row["day"]: row for row in await cursor.fetchall()}
    assert kept[today]["dropped"] is False
    assert "not settled" in kept[today]["detail"]
    assert f"messages_{today:%Y%m%d}" in await _partitions(conn, "messages")
    assert f"message_recipients_{today:%Y%m%d}" in await _partitions(conn, "message_recipients")
