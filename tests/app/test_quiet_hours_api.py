"""Quiet hours through the API: a message that would leave in the recipient's quiet
hours waits as scheduled with its hold, says why, and leaves when the window opens; a
transactional one leaves at once; validity still wins. The window is set around the
recipient's current local time, and the window's opening is brought forward in the
database (the message's due time) rather than waited for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests import support, workers
from tests.support import VALID_TO

PRICE = 7_900
LOS_ANGELES = ZoneInfo("America/Los_Angeles")  # VALID_TO's zone


async def _quiet_now(api, admin_headers, tenant) -> datetime:
    """Quiet hours from an hour ago to two hours ahead in Los Angeles; when they end."""
    now = datetime.now(LOS_ANGELES)
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    patched = await api.patch(
        f"/v1/admin/tenants/{tenant.id}",
        json={"quiet_hours": {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["quiet_hours"] == {
        "start": start.strftime("%H:%M"),
        "end": end.strftime("%H:%M"),
    }
    return end.replace(second=0, microsecond=0).astimezone(UTC)


async def test_a_message_in_quiet_hours_waits_with_its_hold_and_says_why(
    api, conn, admin_headers, tenant
):
    opens = await _quiet_now(api, admin_headers, tenant)
    sent = await support.send(api, tenant)
    assert sent.status_code == 202, sent.text
    message = sent.json()
    assert message["status"] == "scheduled"
    assert datetime.fromisoformat(message["send_at"]) == opens
    assert datetime.fromisoformat(message["quiet_hours_until"]) == opens
    shown = await support.message(api, tenant, message["id"])
    assert datetime.fromisoformat(shown["quiet_hours_until"]) == opens
    assert (await support.balance(api, tenant))["held"] == PRICE
    # A one-time code goes at once.
    code = (await support.send(api, tenant, body="Your code: 123456", quiet_hours=False)).json()
    assert (code["status"], code["quiet_hours_until"]) == ("queued", None)
    # A batch follows the tenant's window too.
    batch = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": VALID_TO, "body": "x"}]},
        headers=tenant.headers,
    )
    assert batch.json()["messages"][0]["status"] == "scheduled"
    # No quiet hours any more: the very next send leaves at once (the process's cached
    # key is found stale by its accept call and looked up again).
    cleared = await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"quiet_hours": None}, headers=admin_headers
    )
    assert cleared.json()["quiet_hours"] is None
    again = await support.send(api, tenant)
    assert again.json()["status"] == "queued"
    # And back on: the next send waits again.
    await _quiet_now(api, admin_headers, tenant)
    assert (await support.send(api, tenant)).json()["status"] == "scheduled"
    assert await support.violations(conn) == []


async def _window_opens(conn, message_id: str) -> None:
    """Bring the window's end to now for this message: its due time, its tenant's turn."""
    await conn.execute(
        "UPDATE messages SET send_at = now(), next_attempt_at = now() WHERE id = %s",
        (message_id,),
    )
    await conn.execute("UPDATE dispatch_queue SET due_at = now()")
    await conn.execute("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE status = 'todo'")


async def test_it_leaves_when_the_window_opens(api, conn, settings, admin_headers, tenant):
    await _quiet_now(api, admin_headers, tenant)
    message = (await support.send(api, tenant)).json()
    await _window_opens(conn, message["id"])
    async with workers.in_process(settings):

        async def delivered():
            got = await support.message(api, tenant, message["id"])
            return got if got["status"] == "delivered" else None

        got = await workers.eventually(delivered)
    assert got["sent_at"] is not None
    assert (await support.balance(api, tenant))["captured"] == PRICE


async def test_validity_still_wins_over_quiet_hours(api, conn, settings, admin_headers, tenant):
    opens = await _quiet_now(api, admin_headers, tenant)
    message = (await support.send(api, tenant, validity_seconds=60)).json()
    cursor = await conn.execute("SELECT expires_at FROM messages WHERE id = %s", (message["id"],))
    expires_at = (await cursor.fetchone())["expires_at"]
    # It cannot leave before it expires: when its window opens, it expires, released.
    assert expires_at < opens
    await _window_opens(conn, message["id"])
    await conn.execute(
        "UPDATE messages SET expires_at = now() - interval '1 second' WHERE id = %s",
        (message["id"],),
    )
    async with workers.in_process(settings):

        async def settled():
            got = await support.message(api, tenant, message["id"])
            return got if got["status"] == "expired" else None

        await workers.eventually(settled)
    assert await support.balance(api, tenant) == {
        "available": 10_000_000,
        "held": 0,
        "captured": 0,
        "currency": "USD",
    }
    assert await support.violations(conn) == []
