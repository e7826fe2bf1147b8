"""Inbound messages in Twilio's incoming-message webhook format (``inbound_format:
"twilio"``): the form Twilio posts, signed so that the official RequestValidator accepts
it, and a TwiML ``<Message>`` answer sent as a reply through the accept of every
message (billed, opt-outs honoured)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator

from jobs.webhook_transport import system_resolver
from tests import httpd, support, two_way
from tests.app.test_twilio_facade import credentials
from tests.jobs.test_webhook_destinations import _deliver_once
from tests.two_way import HANDSET, OUR_NUMBER


async def _twilio_tenant(api, admin_headers, tenant, url) -> tuple[str, str]:
    await two_way.http_provider(api, admin_headers)
    await two_way.own(api, admin_headers, tenant, OUR_NUMBER)
    configured = await two_way.configure(
        api, admin_headers, tenant, inbound_url=url, inbound_format="twilio"
    )
    assert configured["inbound_format"] == "twilio"
    return await credentials(api, admin_headers, tenant)


async def _outbound(api, tenant) -> list[dict]:
    listed = await api.get("/v1/messages", headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    return listed.json()["messages"]


async def _last_error(conn) -> str | None:
    cursor = await conn.execute("SELECT last_error, delivered_at FROM callbacks")
    [row] = await cursor.fetchall()
    assert row["delivered_at"] is not None
    return row["last_error"]


async def test_an_inbound_message_is_posted_as_twilio_posts_it(
    api, admin_headers, pool, settings, tenant
):
    with httpd.serve() as app:
        sid, token = await _twilio_tenant(api, admin_headers, tenant, app.url)
        await two_way.text_in(api, "Hi there", id="mo-1")
        assert await _deliver_once(settings, pool, system_resolver) == 1
    [request] = app.received
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    params = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
    signature = request.headers["x-twilio-signature"]
    assert RequestValidator(token).validate(app.url, params, signature)
    assert not RequestValidator("0" * 32).validate(app.url, params, signature)
    assert params["AccountSid"] == sid
    assert (params["From"], params["To"], params["Body"]) == (HANDSET, OUR_NUMBER, "Hi there")
    assert (params["NumMedia"], params["NumSegments"], params["SmsStatus"]) == (
        "0",
        "1",
        "received",
    )
    assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"]
    assert params["MessageSid"].startswith("SM")
    # +44 7911 123456 is a Guernsey mobile number to libphonenumber.
    assert (params["FromCountry"], params["ToCountry"]) == ("GG", "US")
    assert params["ApiVersion"] == "2010-04-01"
    # The SID is the message's: the facade fetches it.
    fetched = await api.get(
        f"/2010-04-01/Accounts/{sid}/Messages/{params['MessageSid']}.json", auth=(sid, token)
    )
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["direction"] == "inbound"


async def test_a_twiml_answer_is_sent_back_as_a_billed_reply(
    api, admin_headers, conn, pool, settings, tenant
):
    with httpd.serve() as app:
        app.answer = (
            b'<?xml version="1.0" encoding="UTF-8"?>'
            b"<Response><Message>Thanks, we got it</Message></Response>"
        )
        app.answer_type = "text/xml"
        await _twilio_tenant(api, admin_headers, tenant, app.url)
        before = await support.balance(api, tenant)
        await two_way.text_in(api, "Hi there", id="mo-1")
        assert await _deliver_once(settings, pool, system_resolver) == 1
    [reply] = await _outbound(api, tenant)
    assert (reply["to"], reply["from"], reply["body"]) == (HANDSET, OUR_NUMBER, "Thanks, we got it")
    assert reply["status"] == "queued"
    assert reply["price"] == 7_900
    after = await support.balance(api, tenant)
    assert after["held"] == before["held"] + 7_900
    assert after["available"] == before["available"] - 7_900
    assert await _last_error(conn) is None
    # Delivered once: another run sends nothing again.
    assert await _deliver_once(settings, pool, system_resolver) == 0
    assert len(await _outbound(api, tenant)) == 1


async def test_no_reply_goes_to_a_handset_that_opted_out(
    api, admin_headers, conn, pool, settings, tenant
):
    with httpd.serve() as app:
        app.answer = b"<Response><Message><Body>Anything else?</Body></Message></Response>"
        await _twilio_tenant(api, admin_headers, tenant, app.url)
        suppressed = await api.post(
            "/v1/suppressions", json={"recipient": HANDSET}, headers=tenant.headers
        )
        assert suppressed.status_code == 201, suppressed.text
        before = await support.balance(api, tenant)
        await two_way.text_in(api, "hello?", id="mo-1")
        assert await _deliver_once(settings, pool, system_resolver) == 1
        assert len(app.received) == 1
    assert await _outbound(api, tenant) == []
    assert await support.balance(api, tenant) == before
    assert (await _last_error(conn)).startswith("TwiML reply not sent: recipient_opted_out")


async def test_an_answer_that_is_not_twiml_is_delivered_and_sends_nothing(
    api, admin_headers, conn, pool, settings, tenant
):
    with httpd.serve() as app:
        app.answer = b"<Response><Message>unclosed"
        await _twilio_tenant(api, admin_headers, tenant, app.url)
        await two_way.text_in(api, "hello?", id="mo-1")
        assert await _deliver_once(settings, pool, system_resolver) == 1
    assert await _outbound(api, tenant) == []
    assert (await _last_error(conn)).startswith("TwiML answer not used: not XML")
