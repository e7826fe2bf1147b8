"""The official `twilio` package, unmodified, against a real `smsgw api` process: only its
base URL (through its pluggable HTTP client) and credentials change. It creates, fetches,
lists across pages and cancels messages, and its RequestValidator accepts the gateway's
status callbacks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests import httpd, support, workers
from tests.two_way import HANDSET, OUR_NUMBER


class GatewayHttpClient(TwilioHttpClient):
    """Sends what the client addresses to api.twilio.com to the gateway instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def request(self, method, url, *args, **kwargs):
        return super().request(
            method, url.replace("https://api.twilio.com", self.base_url), *args, **kwargs
        )


@pytest.fixture
async def twilio_client(api, db_url, admin_headers, tenant):
    issued = await api.post(
        f"/v1/admin/tenants/{tenant.id}/twilio-credentials", headers=admin_headers
    )
    assert issued.status_code == 201
    creds = issued.json()
    owned = await api.post(
        f"/v1/admin/tenants/{tenant.id}/numbers", json={"number": OUR_NUMBER}, headers=admin_headers
    )
    assert owned.status_code == 201
    with workers.api_process(db_url) as base_url:
        # The two-line change: credentials, and where the client sends its requests.
        client = Client(
            creds["account_sid"], creds["auth_token"], http_client=GatewayHttpClient(base_url)
        )
        yield client, creds


async def test_the_twilio_client_creates_fetches_lists_and_cancels(twilio_client, api, tenant):
    client, creds = twilio_client

    def work():
        created = [
            client.messages.create(to=HANDSET, from_=OUR_NUMBER, body=f"order {n} shipped")
            for n in range(5)
        ]
        fetched = client.messages(created[2].sid).fetch()
        listed = client.messages.list(limit=5, page_size=2)
        first = client.messages.page(page_size=2)
        second = first.next_page()
        back = second.previous_page()
        scheduled = client.messages.create(
            to=HANDSET,
            from_=OUR_NUMBER,
            body="see you tomorrow",
            schedule_type="fixed",
            send_at=datetime.now(UTC) + timedelta(hours=1),
        )
        canceled = client.messages(scheduled.sid).update(status="canceled")
        return created, fetched, listed, first, second, back, scheduled, canceled

    created, fetched, listed, first, second, back, scheduled, canceled = await asyncio.to_thread(
        work
    )
    assert all(m.status == "queued" and m.sid.startswith("SM") for m in created)
    assert created[0].account_sid == creds["account_sid"]
    assert created[0].num_segments == "1"
    assert created[0].direction == "outbound-api"
    assert (fetched.sid, fetched.to, fetched.from_, fetched.body) == (
        created[2].sid,
        HANDSET,
        OUR_NUMBER,
        "order 2 shipped",
    )
    assert fetched.date_created is not None  # parsed from RFC 2822
    assert [m.sid for m in listed] == [m.sid for m in reversed(created)]
    assert [m.sid for m in first] == [created[4].sid, created[3].sid]
    assert [m.sid for m in second] == [created[2].sid, created[1].sid]
    assert [m.sid for m in back] == [created[4].sid, created[3].sid]
    assert scheduled.status == "scheduled"
    assert canceled.status == "canceled"
    balance = await support.balance(api, tenant)
    assert balance["held"] == 5 * 7_900  # the canceled one's hold was released

    def errors():
        caught = []
        for call in (
            lambda: client.messages.create(to="+1555", from_=OUR_NUMBER, body="x"),
            lambda: client.messages("SM" + "0" * 32).fetch(),
            # Already canceled: only a scheduled or queued message can be.
            lambda: client.messages(scheduled.sid).update(status="canceled"),
        ):
            with pytest.raises(TwilioRestException) as raised:
                call()
            caught.append((raised.value.status, raised.value.code))
        return caught

    assert await asyncio.to_thread(errors) == [(400, 21211), (404, 20404), (400, 30409)]


async def test_status_callbacks_pass_twilios_request_validator(twilio_client, settings):
    client, creds = twilio_client
    with httpd.serve() as hook:
        message = await asyncio.to_thread(
            lambda: client.messages.create(
                to=HANDSET, from_=OUR_NUMBER, body="track me", status_callback=hook.url
            )
        )
        async with workers.in_process(settings):

            async def delivered():
                return len(hook.received) >= 3 and hook.received

            received = await workers.eventually(delivered)
    validator = RequestValidator(creds["auth_token"])
    statuses = []
    for request in received:
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        params = dict(parse_qsl(request.body.decode()))
        signature = request.headers["x-twilio-signature"]
        assert validator.validate(hook.url, params, signature)
        assert not RequestValidator("another-token").validate(hook.url, params, signature)
        assert params["MessageSid"] == params["SmsSid"] == message.sid
        assert params["AccountSid"] == creds["account_sid"]
        assert (params["To"], params["From"]) == (HANDSET, OUR_NUMBER)
        statuses.append(params["MessageStatus"])
    assert sorted(statuses) == ["delivered", "sending", "sent"]
    final = await asyncio.to_thread(lambda: client.messages(message.sid).fetch())
    assert final.status == "delivered"
    assert final.price == "-0.007900"
    assert final.price_unit == "USD"
