"""Inbound messages from an HTTP provider: matched to the tenant owning the number,
stored once, reassembled when long, listed, and POSTed to the tenant's webhook, signed."""

from __future__ import annotations

import json
import time
import uuid

from core import callbacks, inbound
from jobs.scheduler import ProcrastinateScheduler
from tests import httpd, support, two_way, workers
from tests.two_way import HANDSET, OUR_NUMBER


async def test_an_inbound_message_reaches_the_tenants_webhook_signed(
    api, conn, settings, admin_headers, tenant
):
    await two_way.http_provider(api, admin_headers)
    await two_way.own(api, admin_headers, tenant, OUR_NUMBER)
    with httpd.serve() as hook:
        view = await two_way.configure(api, admin_headers, tenant, inbound_url=hook.url)
        assert view["inbound_url"] == hook.url
        answer = await two_way.text_in(api, "Is my order on its way?", id="MO-1")
        assert answer == {"accepted": 1, "duplicates": 0, "unrouted": 0}
        async with workers.in_process(settings, queues=["callbacks"]):

            async def posted():
                return hook.received

            [request] = await workers.eventually(posted)
    assert callbacks.verify(
        tenant.webhook_secret,
        request.body,
        request.headers["x-smsgw-signature"],
        now=int(time.time()),
    )
    body = json.loads(request.body)
    assert body["direction"] == "inbound"
    assert (body["from"], body["to"], body["body"]) == (
        HANDSET,
        OUR_NUMBER,
        "Is my order on its way?",
    )
    assert body["complete"] is True
    assert body["provider"] == "agg"
    assert body["provider_message_id"] == "MO-1"

    listed = await api.get("/v1/messages?direction=inbound", headers=tenant.headers)
    assert listed.status_code == 200
    [shown] = listed.json()["messages"]
    assert shown["id"] == body["id"]
    assert shown["status"] == "received"
    # The default listing is the outbound one, as before.
    outbound = await api.get("/v1/messages", headers=tenant.headers)
    assert outbound.json()["messages"] == []


async def test_a_repeated_provider_id_is_stored_once(api, conn, admin_headers, tenant):
    await two_way.http_provider(api, admin_headers)
    await two_way.own(api, admin_headers, tenant, OUR_NUMBER)
    first = await two_way.text_in(api, "hello", id="MO-7")
    again = await two_way.text_in(api, "hello", id="MO-7")
    assert first["accepted"] == 1
    assert again == {"accepted": 0, "duplicates": 1, "unrouted": 0}
    listed = await api.get("/v1/messages?direction=inbound", headers=tenant.headers)
    assert len(listed.json()["messages"]) == 1


async def test_a_message_to_a_number_nobody_owns_is_dropped_and_counted(
    api, conn, admin_headers, tenant
):
    await two_way.http_provider(api, admin_headers)
    answer = await two_way.text_in(api, "anyone?", id="MO-9", to="+14155550111")
    assert answer == {"accepted": 0, "duplicates": 0, "unrouted": 1}
    cursor = await conn.execute("SELECT count(*) AS n FROM inbound_messages")
    assert (await cursor.fetchone())["n"] == 0


async def test_unsigned_or_malformed_inbound_posts_are_refused(api, conn, admin_headers):
    await two_way.http_provider(api, admin_headers)
    message = {"id": "X", "from": HANDSET, "to": OUR_NUMBER, "text": "hi"}
    support.assert_problem(await two_way.inbound(api, message, secret="guess"), 401, "unauthorized")
    unsigned = await api.post("/v1/providers/agg/inbound", content=json.dumps(message).encode())
    support.assert_problem(unsigned, 401, "unauthorized")
    for bad in ({"from": HANDSET, "to": OUR_NUMBER, "text": "no id"}, [], {"id": "Y", "text": 1}):
        support.assert_problem(await two_way.inbound(api, bad), 422, "invalid_request")


async def test_parts_of_a_long_message_are_delivered_once_whole(api, conn, admin_headers, tenant):
    await two_way.http_provider(api, admin_headers)
    await two_way.own(api, admin_headers, tenant, OUR_NUMBER)
    parts = ["The first part, ", "the second part, ", "and the last."]
    # They arrive out of order, and one of them twice.
    for number in (3, 1, 1, 2):
        answer = await two_way.inbound(
            api,
            {
                "id": f"P-{number}",
                "from": HANDSET,
                "to": OUR_NUMBER,
                "text": parts[number - 1],
                "part": {"reference": 77, "total": 3, "number": number},
            },
        )
        assert answer.status_code == 202
    listed = (await api.get("/v1/messages?direction=inbound", headers=tenant.headers)).json()
    [whole] = listed["messages"]
    assert whole["body"] == "".join(parts)
    assert (whole["parts"], whole["parts_expected"], whole["complete"]) == (3, 3, True)
    cursor = await conn.execute("SELECT count(*) AS n FROM inbound_parts")
    assert (await cursor.fetchone())["n"] == 0


async def test_a_long_message_missing_a_part_is_delivered_flagged_after_the_timeout(
    api, pool, conn, admin_headers, tenant
):
    await two_way.http_provider(api, admin_headers)
    await two_way.own(api, admin_headers, tenant, OUR_NUMBER)
    for number, text in ((1, "Part one, "), (3, "part three.")):
        await two_way.inbound(
            api,
            {
                "id": f"Q-{number}",
                "from": HANDSET,
                "to": OUR_NUMBER,
                "text": text,
                "part": {"reference": 5, "total": 3, "number": number},
            },
        )
    listed = (await api.get("/v1/messages?direction=inbound", headers=tenant.headers)).json()
    assert listed["messages"] == []  # still waiting for part two
    flushed = await inbound.flush_stale(
        pool, older_than_seconds=0, scheduler=ProcrastinateScheduler()
    )
    assert flushed == 1
    listed = (await api.get("/v1/messages?direction=inbound", headers=tenant.headers)).json()
    [partial] = listed["messages"]
    assert partial["body"] == "Part one, part three."
    assert (partial["parts"], partial["parts_expected"], partial["complete"]) == (2, 3, False)


async def test_numbers_are_owned_by_one_tenant(api, admin_headers, tenant):
    other = await support.make_tenant(api, admin_headers, name="other")
    path = f"/v1/admin/tenants/{tenant.id}/numbers"
    first = await api.post(path, json={"number": OUR_NUMBER}, headers=admin_headers)
    assert first.status_code == 201
    assert first.json()["number"] == OUR_NUMBER
    again = await api.post(path, json={"number": OUR_NUMBER}, headers=admin_headers)
    assert again.status_code == 200
    taken = await api.post(
        f"/v1/admin/tenants/{other.id}/numbers", json={"number": OUR_NUMBER}, headers=admin_headers
    )
    support.assert_problem(taken, 409, "conflict")
    bad = await api.post(path, json={"number": "not a number!"}, headers=admin_headers)
    support.assert_problem(bad, 422, "invalid_request")
    await api.post(path, json={"number": "12345"}, headers=admin_headers)
    listed = await api.get(path, headers=admin_headers)
    assert [n["number"] for n in listed.json()["numbers"]] == [OUR_NUMBER, "12345"]
    gone = await api.delete(f"{path}/{OUR_NUMBER}", headers=admin_headers)
    assert gone.status_code == 204
    support.assert_problem(
        await api.delete(f"{path}/{OUR_NUMBER}", headers=admin_headers), 404, "not_found"
    )
    unknown = await api.post(
        f"/v1/admin/tenants/{uuid.uuid4()}/numbers",
        json={"number": "+14155550123"},
        headers=admin_headers,
    )
    support.assert_problem(unknown, 404, "not_found")


async def test_the_inbound_webhook_must_be_an_http_url_and_can_be_removed(
    api, admin_headers, tenant
):
    bad = await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"inbound_url": "ftp://x"}, headers=admin_headers
    )
    body = support.assert_problem(bad, 422, "invalid_request")
    assert body["errors"][0]["field"] == "inbound_url"
    set_ = await two_way.configure(
        api, admin_headers, tenant, inbound_url="https://hooks.example/in"
    )
    assert set_["inbound_url"] == "https://hooks.example/in"
    cleared = await two_way.configure(api, admin_headers, tenant, inbound_url=None)
    assert cleared["inbound_url"] is None
    assert cleared["tier"] == "standard"  # the rest is untouched
