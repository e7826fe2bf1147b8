"""The Twilio facade as raw HTTP: credentials, Basic auth, Twilio's error bodies and
codes, the idempotency token, and the same ledger as the REST API."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx

from tests import support, two_way
from tests.two_way import HANDSET, OUR_NUMBER


async def credentials(api, admin_headers, tenant) -> tuple[str, str]:
    response = await api.post(
        f"/v1/admin/tenants/{tenant.id}/twilio-credentials", headers=admin_headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["account_sid"], body["auth_token"]


def assert_twilio_error(response: httpx.Response, status: int, code: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert (body["status"], body["code"]) == (status, code)
    assert body["message"]
    return body


async def test_credentials_are_issued_once_and_a_new_token_replaces_the_old(
    api, admin_headers, tenant
):
    sid, token = await credentials(api, admin_headers, tenant)
    assert re.fullmatch(r"AC[0-9a-f]{32}", sid)
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    messages = f"/2010-04-01/Accounts/{sid}/Messages.json"
    assert (await api.get(messages, auth=(sid, token))).status_code == 200
    same_sid, new_token = await credentials(api, admin_headers, tenant)
    assert same_sid == sid
    assert new_token != token
    assert_twilio_error(await api.get(messages, auth=(sid, token)), 401, 20003)
    assert (await api.get(messages, auth=(sid, new_token))).status_code == 200
    # Another account's path, or no auth at all, is refused the same way.
    other = await support.make_tenant(api, admin_headers, name="other")
    other_sid, other_token = await credentials(api, admin_headers, other)
    assert_twilio_error(await api.get(messages, auth=(other_sid, other_token)), 401, 20003)
    assert_twilio_error(await api.get(messages), 401, 20003)


async def test_create_validates_like_the_rest_api_with_twilios_codes(
    api, conn, admin_headers, tenant
):
    sid, token = await credentials(api, admin_headers, tenant)
    url = f"/2010-04-01/Accounts/{sid}/Messages.json"

    async def create(**form):
        return await api.post(url, data=form, auth=(sid, token))

    assert_twilio_error(await create(To="+1555", From=OUR_NUMBER, Body="x"), 400, 21211)
    assert_twilio_error(await create(From=OUR_NUMBER, Body="x"), 400, 21604)
    assert_twilio_error(await create(To=HANDSET, Body="x"), 400, 21603)
    assert_twilio_error(await create(To=HANDSET, From=OUR_NUMBER), 400, 21602)
    assert_twilio_error(await create(To=HANDSET, From=OUR_NUMBER, Body="x" * 1700), 400, 21617)
    assert_twilio_error(
        await create(To=HANDSET, From=OUR_NUMBER, Body="x", StatusCallback="nope"), 400, 21609
    )
    assert_twilio_error(
        await create(To=HANDSET, From=OUR_NUMBER, Body="x", ScheduleType="fixed"), 400, 35111
    )
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert_twilio_error(
        await create(To=HANDSET, From=OUR_NUMBER, Body="x", ScheduleType="fixed", SendAt=past),
        400,
        35114,
    )
    assert_twilio_error(
        await create(To=HANDSET, From=OUR_NUMBER, Body="x", ValidityPeriod="36001"), 400, 90007
    )
    # Nothing was stored by any of them; an empty account is told so in Twilio's words.
    assert (await support.stored(conn))["messages"] == 0
    broke = await support.make_tenant(api, admin_headers, name="broke")
    broke_sid, broke_token = await credentials(api, admin_headers, broke)
    await two_way.own(api, admin_headers, broke, two_way.OTHER_NUMBER)
    short = await api.post(
        f"/2010-04-01/Accounts/{broke_sid}/Messages.json",
        data={"To": HANDSET, "From": two_way.OTHER_NUMBER, "Body": "x"},
        auth=(broke_sid, broke_token),
    )
    assert_twilio_error(short, 402, 20005)


async def test_a_send_to_an_opted_out_recipient_is_21610(api, conn, admin_headers, tenant):
    await two_way.http_provider(api, admin_headers)
    await two_way.own(api, admin_headers, tenant, OUR_NUMBER)
    sid, token = await credentials(api, admin_headers, tenant)
    await two_way.text_in(api, "STOP", id="MO-1")
    refused = await api.post(
        f"/2010-04-01/Accounts/{sid}/Messages.json",
        data={"To": HANDSET, "From": OUR_NUMBER, "Body": "sale!"},
        auth=(sid, token),
    )
    assert_twilio_error(refused, 400, 21610)
    assert (await support.balance(api, tenant))["held"] == 0


async def test_the_idempotency_token_replays_the_first_answer(api, conn, admin_headers, tenant):
    sid, token = await credentials(api, admin_headers, tenant)
    url = f"/2010-04-01/Accounts/{sid}/Messages.json"
    form = {"To": HANDSET, "MessagingServiceSid": "MG" + "a" * 32, "Body": "once"}
    headers = {"I-Twilio-Idempotency-Token": "tok-1"}
    first = await api.post(url, data=form, auth=(sid, token), headers=headers)
    assert first.status_code == 201, first.text
    again = await api.post(url, data=form, auth=(sid, token), headers=headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert first.json()["messaging_service_sid"] == "MG" + "a" * 32
    assert (await support.stored(conn))["messages"] == 1
    other = await api.post(url, data={**form, "Body": "twice"}, auth=(sid, token), headers=headers)
    assert_twilio_error(other, 422, 422)


async def test_a_messaging_service_sends_from_the_tenants_number(api, admin_headers, tenant):
    await two_way.own(api, admin_headers, tenant, OUR_NUMBER)
    sid, token = await credentials(api, admin_headers, tenant)
    created = await api.post(
        f"/2010-04-01/Accounts/{sid}/Messages.json",
        data={"To": HANDSET, "MessagingServiceSid": "MG" + "0" * 32, "Body": "hi"},
        auth=(sid, token),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["from"] == OUR_NUMBER
    assert body["sid"].startswith("SM")
    assert body["account_sid"] == sid
    fetched = await api.get(body["uri"], auth=(sid, token))
    assert fetched.json()["messaging_service_sid"] == "MG" + "0" * 32
    # The REST API sees the same message.
    rest = await api.get(f"/v1/messages/{body['sid'][2:]}", headers=tenant.headers)
    assert rest.status_code == 200
    missing = await api.get(
        f"/2010-04-01/Accounts/{sid}/Messages/SM{'0' * 32}.json", auth=(sid, token)
    )
    assert_twilio_error(missing, 404, 20404)


async def test_the_list_holds_inbound_messages_too(api, admin_headers, tenant):
    await two_way.http_provider(api, admin_headers)
    await two_way.own(api, admin_headers, tenant, OUR_NUMBER)
    sid, token = await credentials(api, admin_headers, tenant)
    url = f"/2010-04-01/Accounts/{sid}/Messages.json"
    sent = await api.post(
        url, data={"To": HANDSET, "From": OUR_NUMBER, "Body": "ping"}, auth=(sid, token)
    )
    assert sent.status_code == 201
    await two_way.text_in(api, "pong", id="MO-1")
    listed = await api.get(url, params={"PageSize": "1"}, auth=(sid, token))
    page = listed.json()
    [newest] = page["messages"]
    assert (newest["direction"], newest["status"], newest["body"]) == (
        "inbound",
        "received",
        "pong",
    )
    assert (newest["from"], newest["to"]) == (HANDSET, OUR_NUMBER)
    assert (page["page"], page["page_size"], page["previous_page_uri"]) == (0, 1, None)
    following = await api.get(page["next_page_uri"], auth=(sid, token))
    [older] = following.json()["messages"]
    assert older["sid"] == sent.json()["sid"]
    assert following.json()["next_page_uri"] is None
    fetched = await api.get(newest["uri"], auth=(sid, token))
    assert fetched.json()["body"] == "pong"
    only_sent = await api.get(url, params={"From": OUR_NUMBER}, auth=(sid, token))
    assert [m["body"] for m in only_sent.json()["messages"]] == ["ping"]


async def _twenty_sends_against_credit_for_15(api, conn, admin_headers) -> int:
    """20 concurrent sends, credit for 15: 15 x 201 with distinct SIDs, 5 x 402; returns
    how many transactions wrote the messages."""
    tenant = await support.make_tenant(api, admin_headers, credit=15 * 7_900, name="tw")
    await two_way.own(api, admin_headers, tenant, OUR_NUMBER)
    sid, token = await credentials(api, admin_headers, tenant)
    url = f"/2010-04-01/Accounts/{sid}/Messages.json"
    sends = [
        api.post(url, data={"To": HANDSET, "From": OUR_NUMBER, "Body": f"m{i}"}, auth=(sid, token))
        for i in range(20)
    ]
    answers = await asyncio.gather(*sends)
    accepted = [answer for answer in answers if answer.status_code == 201]
    assert len(accepted) == 15
    for answer in answers:
        if answer.status_code != 201:
            assert_twilio_error(answer, 402, 20005)
    assert len({answer.json()["sid"] for answer in accepted}) == 15
    assert sorted(answer.json()["body"] for answer in accepted) == sorted(
        row["body"] for row in await (await conn.execute("SELECT body FROM messages")).fetchall()
    )
    assert (await support.balance(api, tenant))["available"] == 0
    assert await support.violations(conn) == []
    # Rows written by one transaction share its id (xmin).
    cursor = await conn.execute("SELECT count(DISTINCT xmin::text) AS calls FROM messages")
    calls: int = (await cursor.fetchone())["calls"]
    return calls


async def test_concurrent_sends_share_accept_calls_and_each_gets_its_own_answer(
    api, conn, admin_headers
):
    assert await _twenty_sends_against_credit_for_15(api, conn, admin_headers) < 15


async def test_without_shared_calls_each_send_is_accepted_alone_the_same_way(
    api_one_call_each, conn, admin_headers
):
    calls = await _twenty_sends_against_credit_for_15(api_one_call_each, conn, admin_headers)
    assert calls == 15
