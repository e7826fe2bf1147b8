"""SMS pumping protection (issue 25, item 2): after a week of normal hourly traffic, a
burst to one premium range suspends that range only, alerts the tenant once, holds its
queued messages back from dispatch, and lifting releases them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from app.errors import STATUS
from core import errors, pumping
from db import dispatch as dispatch_db
from jobs.scheduler import DISPATCH_TASK
from smpp_server import status
from tests import support
from tests.app import rate_cards
from tests.support import assert_problem

# GB at 30,000, its mobiles (447) at 35,000 and a premium range inside them at 90,000.
CARD = """prefix,country,network,price
44,GB,,30000
447,GB,UK mobile,35000
4470,GB,premium,90000
"""
MOBILE = "+4474001234{:02d}"
PREMIUM = "+4470123{:05d}"


@pytest.fixture
def settings(settings):
    # A floor of 100 an hour, so a burst of a few hundred shows it (the default is 1000).
    return msgspec.structs.replace(settings, pumping_floor=100)


async def _batch(api, tenant, numbers: list[str]) -> Any:
    response = await api.post(
        "/v1/messages/batch",
        json={"messages": [{"to": n, "body": "code 1234"} for n in numbers]},
        headers=tenant.headers,
    )
    assert response.status_code == 202, response.text
    return response.json()


async def _a_week_of_history(conn, tenant_id: str) -> None:
    # 168 closed hours: 20 messages an hour to the mobiles, 1 to the premium range.
    await conn.execute(
        "INSERT INTO destination_counts (tenant_id, country, prefix, hour, slot, n)"
        " SELECT %s, 'GB', p.prefix, date_trunc('hour', now()) - make_interval(hours => h),"
        "        0, p.n"
        "   FROM generate_series(1, 168) AS h, (VALUES ('447', 20), ('4470', 1)) AS p(prefix, n)",
        (tenant_id,),
    )


async def _claimable(conn, tenant_id: str) -> list[str]:
    """The numbers a dispatch turn would claim now (in a transaction rolled back)."""
    async with conn.transaction(force_rollback=True):
        rows = await dispatch_db.claim_candidates(
            conn,
            tenants=[
                {"tenant_id": uuid.UUID(tenant_id), "oldest": datetime(2000, 1, 1, tzinfo=UTC)}
            ],
            per_tenant=10_000,
        )
    return [row["to_number"] for row in rows]


async def _alerts(conn, event: str) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT payload FROM callbacks WHERE kind = 'alert' AND payload ->> 'event' = %s",
        (event,),
    )
    return [row["payload"] for row in await cursor.fetchall()]


async def test_a_burst_to_a_premium_range_suspends_it_alone_and_lifting_releases_it(
    api, conn, settings, admin_headers
):
    tenant = await support.make_tenant(api, admin_headers, credit=100_000_000)
    imported = await rate_cards.import_card(api, admin_headers, "gb", CARD)
    assert imported.status_code == 201, imported.text
    await rate_cards.put_on_card(api, admin_headers, tenant, "gb")
    url = await api.patch(
        "/v1/alerts", json={"alerts_url": "http://127.0.0.1:9/alerts"}, headers=tenant.headers
    )
    assert url.status_code == 200, url.text
    await _a_week_of_history(conn, tenant.id)

    # This hour: normal traffic to the mobiles, and 300 sends in a minute to the range.
    await _batch(api, tenant, [MOBILE.format(i) for i in range(30)])
    for start in (0, 100, 200):
        await _batch(api, tenant, [PREMIUM.format(start + i) for i in range(100)])
    async with conn.transaction():
        assert await pumping.judge(conn, settings, task=DISPATCH_TASK) == 1

    listed = (await api.get("/v1/admin/suspensions", headers=admin_headers)).json()
    (suspension,) = listed["suspensions"]
    assert suspension["tenant_id"] == tenant.id
    assert (suspension["country"], suspension["prefix"]) == ("GB", "4470")
    # The learned limit: 10 x the median (1 an hour), never under the floor of 100.
    assert suspension["cause"]["basis"] == "learned"
    assert suspension["cause"]["hourly_limit"] == 100
    assert suspension["cause"]["hour_count"] == 300
    assert (await api.get("/v1/suspensions", headers=tenant.headers)).json() == listed

    # Refused at the door, with when to come back; the mobiles still go.
    refused = await support.send(api, tenant, to=PREMIUM.format(999), body="code")
    body = assert_problem(refused, 429, "destination_suspended")
    assert 11 * 3600 < int(refused.headers["Retry-After"]) <= 12 * 3600
    assert "suspended" in body["detail"]
    assert (await support.send(api, tenant, to=MOBILE.format(99), body="hi")).status_code == 202
    # The queued ones are held back: a dispatch turn claims only the mobiles.
    claimable = await _claimable(conn, tenant.id)
    assert sorted(claimable) == sorted([MOBILE.format(i) for i in range(30)] + [MOBILE.format(99)])

    # Told once, however often the job looks again.
    async with conn.transaction():
        assert await pumping.judge(conn, settings, task=DISPATCH_TASK) == 0
    (alert,) = await _alerts(conn, "destination.suspended")
    assert alert["data"]["prefix"] == "4470"
    assert alert["tenant_id"] == tenant.id
    assert (
        await support.count(
            conn, "SELECT count(*) AS n FROM operator_events WHERE kind = 'destination.suspended'"
        )
        == 1
    )
    metrics = (await api.get("/metrics", headers=admin_headers)).text
    assert "smsgw_suspensions_active 1.0" in metrics

    # The tenant lifts it: the held messages are due again, and sends go.
    lifted = await api.delete(f"/v1/suspensions/{suspension['id']}", headers=tenant.headers)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["lifted_by"] == "tenant"
    assert len(await _claimable(conn, tenant.id)) == 331
    (told,) = await _alerts(conn, "destination.lifted")
    assert told["data"]["suspension_id"] == suspension["id"]
    assert (await support.send(api, tenant, to=PREMIUM.format(999), body="code")).status_code == 202
    # Lifted this hour: the job does not suspend it again for the same hour's count.
    async with conn.transaction():
        assert await pumping.judge(conn, settings, task=DISPATCH_TASK) == 0
    again = await api.delete(f"/v1/admin/suspensions/{suspension['id']}", headers=admin_headers)
    assert_problem(again, 404, "not_found")
    assert await support.violations(conn) == []


async def test_an_operator_limit_for_the_country_stands_instead_of_the_learned_one(
    api, conn, settings, admin_headers
):
    tenant = await support.make_tenant(api, admin_headers, credit=100_000_000)
    limit = await api.put(
        "/v1/admin/pumping-limits/GB", json={"hourly_limit": 20}, headers=admin_headers
    )
    assert limit.status_code == 200, limit.text
    await _batch(api, tenant, [MOBILE.format(i) for i in range(21)])
    async with conn.transaction():
        assert await pumping.judge(conn, settings, task=DISPATCH_TASK) == 1
    (suspension,) = (await api.get("/v1/admin/suspensions", headers=admin_headers)).json()[
        "suspensions"
    ]
    # A flat card prices every number by the prefix '': the whole country is suspended.
    assert (suspension["country"], suspension["prefix"]) == ("GB", "")
    assert suspension["cause"]["basis"] == "country_limit"
    assert await _claimable(conn, tenant.id) == []
    # An SMPP submit and a Twilio send would hear it their way.
    assert status.submit_status(errors.DestinationSuspended("x", retry_after=1)) == (
        status.ESME_RX_T_APPN
    )
    assert STATUS[errors.DestinationSuspended] == 429
    # The operator lifts it; the cool-off otherwise ends it (expired).
    lifted = await api.delete(f"/v1/admin/suspensions/{suspension['id']}", headers=admin_headers)
    assert lifted.json()["lifted_by"] == "operator"
    assert len(await _claimable(conn, tenant.id)) == 21
    bad = await api.put(
        "/v1/admin/pumping-limits/ZZ", json={"hourly_limit": 0}, headers=admin_headers
    )
    fields = {e["field"] for e in assert_problem(bad, 422, "invalid_request")["errors"]}
    assert fields == {"country", "hourly_limit"}
    assert await support.violations(conn) == []


async def _counts(conn) -> dict[tuple[str, str], int]:
    cursor = await conn.execute(
        "SELECT country, prefix, sum(n)::bigint AS n FROM destination_counts"
        " WHERE hour = date_trunc('hour', now()) GROUP BY 1, 2"
    )
    return {(row["country"], row["prefix"]): row["n"] for row in await cursor.fetchall()}


async def test_every_door_counts_its_accepted_sends_once_per_range(
    api, conn, pool, settings, admin_headers
):
    """Each accept call writes one tally row (its counts in arrays, whatever the number of
    ranges it touched); the round adds them up per range, once, and a tally committed
    while a round drains is left for the next one."""
    # Credit for what follows (4 x 35,000 and 3 x 90,000) and 50,000 more.
    tenant = await support.make_tenant(api, admin_headers, credit=460_000)
    imported = await rate_cards.import_card(api, admin_headers, "gb", CARD)
    assert imported.status_code == 201, imported.text
    await rate_cards.put_on_card(api, admin_headers, tenant, "gb")
    # A batch over two ranges (one call), two single sends, a keyed single send.
    await _batch(api, tenant, [MOBILE.format(i) for i in range(3)] + [PREMIUM.format(1)])
    for number in (MOBILE.format(50), PREMIUM.format(2)):
        assert (await support.send(api, tenant, to=number)).status_code == 202
    keyed = await support.send(
        api, tenant, to=PREMIUM.format(3), headers={"Idempotency-Key": "tally-1"}
    )
    assert keyed.status_code == 202, keyed.text
    # A send refused for its price (50,000 left, 90,000 asked) counts nowhere.
    refused = await support.send(api, tenant, to=PREMIUM.format(4))
    assert_problem(refused, 402, "insufficient_credit")
    assert await support.count(conn, "SELECT count(*) AS n FROM destination_tallies") == 4

    # A tally committed after the round's drain began waits for the next round.
    async with pool.connection() as late:
        await late.execute("BEGIN")
        await late.execute(
            "INSERT INTO destination_tallies (hour, tenant_ids, countries, prefixes, counts)"
            " VALUES (date_trunc('hour', now()), ARRAY[%s::uuid], '{GB}', '{447}', '{7}')",
            (tenant.id,),
        )
        async with conn.transaction():
            assert await pumping.judge(conn, settings, task=DISPATCH_TASK) == 0
        await late.execute("COMMIT")
    assert await _counts(conn) == {("GB", "447"): 4, ("GB", "4470"): 3}
    async with conn.transaction():
        assert await pumping.judge(conn, settings, task=DISPATCH_TASK) == 0
    assert await _counts(conn) == {("GB", "447"): 11, ("GB", "4470"): 3}
    # Drained: another round adds nothing.
    assert await support.count(conn, "SELECT count(*) AS n FROM destination_tallies") == 0
    async with conn.transaction():
        assert await pumping.judge(conn, settings, task=DISPATCH_TASK) == 0
    assert await _counts(conn) == {("GB", "447"): 11, ("GB", "4470"): 3}
    assert await support.violations(conn) == []
