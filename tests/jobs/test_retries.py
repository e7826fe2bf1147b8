"""Retries and expiry against the database: the hold follows the message."""

from __future__ import annotations

from datetime import UTC, datetime

from tests import support, workers


async def test_transient_failures_are_retried_with_growing_jittered_delays(
    api, conn, settings, tenant
):
    sent = [await support.send(api, tenant) for _ in range(20)]
    # Every attempt fails; the delay drawn for attempt n is what the settle stored:
    # next_attempt_at - updated_at while the message waits in `queued`.
    drawn: dict[tuple[str, int], float] = {}

    async def sample_until_four_attempts():
        cursor = await conn.execute(
            "SELECT id, attempts, extract(epoch FROM next_attempt_at - updated_at) AS delay"
            " FROM messages WHERE status = 'queued' AND attempts > 0"
        )
        for row in await cursor.fetchall():
            drawn[(str(row["id"]), row["attempts"])] = float(row["delay"])
        cursor = await conn.execute("SELECT min(attempts) AS n FROM messages")
        return (await cursor.fetchone())["n"] >= 4

    # (The breaker would stop traffic to a provider failing everything: not the subject.)
    async with workers.in_process(
        settings,
        simulator_transient_rate=1.0,
        retry_base_seconds=0.1,
        retry_cap_seconds=10,
        breaker_min_requests=10**6,
    ):
        await workers.eventually(sample_until_four_attempts, timeout=60, interval=0.01)

    by_attempt: dict[int, list[float]] = {}
    for (_, attempt), delay in drawn.items():
        by_attempt.setdefault(attempt, []).append(delay)
    for attempt in (1, 2, 3):
        delays = by_attempt[attempt]
        assert len(delays) >= 10
        # (the delay is drawn just before the settle stamps updated_at: allow a little slack)
        assert all(-0.05 <= d <= 0.1 * 2 ** (attempt - 1) + 0.01 for d in delays)
        assert len({round(d, 4) for d in delays}) > len(delays) * 0.8  # jittered
    mean = {a: sum(by_attempt[a]) / len(by_attempt[a]) for a in (1, 3)}
    assert mean[3] > 2 * mean[1]  # the ceiling quadruples from attempt 1 to 3
    row = await support.message(api, tenant, sent[0].json()["id"])
    assert row["attempts"] >= 4
    assert row["status"] in ("queued", "sending")


async def test_a_message_whose_validity_ends_expires_and_releases_its_hold(
    api, conn, settings, tenant
):
    sent = await support.send(api, tenant, validity_seconds=60)
    message_id = sent.json()["id"]
    # No jitter and a first retry 120 s away: past the 60 s validity.
    async with workers.in_process(
        settings,
        simulator_transient_rate=1.0,
        retry_base_seconds=120,
        retry_cap_seconds=120,
        retry_jitter=0.0,
    ):
        await workers.eventually(lambda: _status_is(api, tenant, message_id, "expired"), timeout=30)
    row = await support.message(api, tenant, message_id)
    assert row["error_code"] == "validity_expired"
    assert await support.balance(api, tenant) == {
        "available": 10_000_000,
        "held": 0,
        "captured": 0,
        "currency": "USD",
    }


async def test_a_message_that_waited_past_its_validity_expires_unsent(api, conn, settings, tenant):
    sent = await support.send(api, tenant)
    message_id = sent.json()["id"]
    # As if the queue had been stuck for hours: the validity is over before any send.
    await conn.execute(
        "UPDATE messages SET expires_at = %s WHERE id = %s", (datetime.now(UTC), message_id)
    )
    async with workers.in_process(settings):
        await workers.eventually(lambda: _status_is(api, tenant, message_id, "expired"), timeout=30)
    row = await support.message(api, tenant, message_id)
    assert row["attempts"] == 0
    assert row["provider"] is None
    assert (await support.balance(api, tenant))["held"] == 0


async def _status_is(api, tenant, message_id, status):
    return (await support.message(api, tenant, message_id))["status"] == status
