"""submit_sm through the accept path of POST /v1/messages, as an ESME (smpplib) sees it:
message ids after the commit, refusals as SMPP statuses, the tenant's rate limit, long
messages billed once, a full window answered, and the ledger after all of it."""

from __future__ import annotations

import asyncio
import uuid

import msgspec

from jobs.scheduler import ProcrastinateScheduler
from smpp_server.server import Listener
from tests import support
from tests.smpp_server import esme as e
from tests.smpp_server.conftest import smpp_tenant

run = asyncio.to_thread
TO = "14155552671"  # support.VALID_TO without the +
LONG_GSM = "".join(f"Line {i:03d} of a long message about your order. " for i in range(12))


async def test_a_submit_is_accepted_as_the_api_would_and_answered_with_its_id(
    api, admin_headers, listener
):
    tenant = await smpp_tenant(api, admin_headers)
    client = tenant.esme(listener)
    await run(client.bind)
    # The tenant's sender ID, to a country that takes alphanumeric senders.
    status, message_id = await run(
        client.submit,
        destination_addr=support.OTHER_TO[1:],
        source_addr="ACME",
        text="Your code is 123456",
    )
    assert status == e.ESME_ROK
    assert len(message_id) == 32  # the message's UUID in hex
    message = await support.message(api, tenant.tenant, message_id)
    assert uuid.UUID(message["id"]).hex == message_id
    assert message["to"] == support.OTHER_TO
    assert message["from"] == "ACME"
    assert message["body"] == "Your code is 123456"
    assert (message["encoding"], message["segments"], message["price"]) == ("GSM-7", 1, 7_900)
    assert message["status"] == "queued"
    # UCS-2 (data_coding 8) with a character outside the BMP, from an E.164 sender.
    status, message_id = await run(
        client.submit,
        destination_addr=TO,
        source_addr_ton=1,
        source_addr=tenant.source,
        data_coding=8,
        short_message="Привет 📦".encode("utf-16-be"),
    )
    assert status == e.ESME_ROK
    message = await support.message(api, tenant.tenant, message_id)
    assert (message["body"], message["encoding"]) == ("Привет 📦", "UCS-2")
    assert message["from"] == "+" + tenant.source
    balance = await support.balance(api, tenant.tenant)
    assert balance["held"] == 2 * 7_900
    await run(client.unbind)


async def test_refusals_come_back_as_smpp_statuses_and_store_nothing(
    api, admin_headers, listener, conn
):
    tenant = await smpp_tenant(api, admin_headers, credit=7_900)
    other = await support.make_tenant(api, admin_headers, name="other")
    await support.own_number(api, admin_headers, other, "+14155550100")
    await support.register_sender(api, admin_headers, other, "OTHERCO")
    client = tenant.esme(listener)
    await run(client.bind)
    answers = await run(
        client.submit_many,
        [
            {"destination_addr": "123", "text": "not a number"},
            {"destination_addr": TO, "source_addr": "NOT A SENDER!", "text": "x"},
            {"destination_addr": TO, "dest_addr_ton": 2, "text": "a national number"},
            {"destination_addr": TO, "text": ""},
            {"destination_addr": TO, "data_coding": 4, "short_message": b"\x01\x02"},
            {"destination_addr": TO, "text": "x", "validity_period": "tomorrow"},
            # The first part of a message announced as 12 parts: over 10 segments.
            {"destination_addr": TO, **e.long_message_parts("x" * 1800)[0]},
            # Another tenant's number, a sender ID that is not its, and its own sender ID
            # where the destination's country takes no alphanumeric sender.
            {"destination_addr": TO, "source_addr": "14155550100", "text": "not mine"},
            {"destination_addr": TO, "source_addr": "OTHERCO", "text": "not mine"},
            {"destination_addr": TO, "source_addr": "ACME", "text": "not to the US"},
        ],
        window=10,
    )
    assert [status for status, _ in answers] == [
        0x0B,  # ESME_RINVDSTADR
        0x0A,  # ESME_RINVSRCADR
        0x50,  # ESME_RINVDSTTON
        0x01,  # ESME_RINVMSGLEN
        0x45,  # ESME_RSUBMITFAIL: binary data_coding
        0x62,  # ESME_RINVEXPIRY
        0x01,  # ESME_RINVMSGLEN: 12 parts
        0x0A,  # ESME_RINVSRCADR: sender_not_allowed
        0x0A,  # ESME_RINVSRCADR: sender_not_allowed
        0x0A,  # ESME_RINVSRCADR: sender_not_allowed_for_destination
    ]
    assert await support.stored(conn) == support.NOTHING_STORED
    # Credit for one message: the first is accepted, the second finds none.
    first = await run(client.submit, destination_addr=TO, text="one")
    second = await run(client.submit, destination_addr=TO, text="two", registered_delivery=1)
    assert (first[0], second[0]) == (e.ESME_ROK, e.ESME_RSUBMITFAIL)
    assert (await support.balance(api, tenant.tenant))["available"] == 0
    # The refused submit asked for a receipt: no request of it is left behind.
    cursor = await conn.execute("SELECT count(*) AS n FROM smpp_receipt_requests")
    assert (await cursor.fetchone())["n"] == 0
    await run(client.unbind)


async def test_over_the_tenant_rate_submits_are_throttled(api, admin_headers, listener, conn):
    tenant = await smpp_tenant(api, admin_headers, rate_limit_mps=3)
    client = tenant.esme(listener)
    await run(client.bind)
    answers = await run(
        client.submit_many,
        [{"destination_addr": TO, "text": f"burst {i}"} for i in range(12)],
        window=12,
    )
    statuses = [status for status, _ in answers]
    assert set(statuses) == {e.ESME_ROK, e.ESME_RTHROTTLED}
    accepted = statuses.count(e.ESME_ROK)
    # A bucket of one second at 3/s: a burst gets the bucket and what refilled meanwhile.
    assert 3 <= accepted <= 5
    cursor = await conn.execute("SELECT count(*) AS n FROM messages")
    assert (await cursor.fetchone())["n"] == accepted
    assert (await support.balance(api, tenant.tenant))["held"] == accepted * 7_900
    await run(client.unbind)


async def test_a_full_window_is_answered_without_lockstep_and_shares_accept_calls(
    api, admin_headers, listener, conn
):
    """Twenty submits written before any answer is read: all are accepted, each under
    an id of its own (the ESME never has to wait for one answer to send the next), and
    those that arrived while accept calls were in flight shared the next one, with the
    receipt requests of those that asked for one."""
    tenant = await smpp_tenant(api, admin_headers)
    client = tenant.esme(listener)
    await run(client.bind)
    answers = await run(
        client.submit_many,
        [
            {"destination_addr": TO, "text": f"windowed {i}", "registered_delivery": i % 2}
            for i in range(20)
        ],
        window=20,
    )
    assert [status for status, _ in answers] == [e.ESME_ROK] * 20
    assert len({message_id for _, message_id in answers}) == 20
    # Rows written by one transaction share its id (xmin).
    cursor = await conn.execute(
        "SELECT count(*) AS messages, count(DISTINCT xmin::text) AS calls FROM messages"
    )
    written = await cursor.fetchone()
    assert written["messages"] == 20
    assert written["calls"] < 10
    cursor = await conn.execute(
        "SELECT r.message_id, r.xmin::text = m.xmin::text AS with_message"
        " FROM smpp_receipt_requests r JOIN messages m ON m.id = r.message_id"
    )
    requests = await cursor.fetchall()
    assert {r["message_id"].hex for r in requests} == {answers[i][1] for i in range(1, 20, 2)}
    assert all(r["with_message"] for r in requests)
    assert (await support.balance(api, tenant.tenant))["held"] == 20 * 7_900
    assert await support.violations(conn) == []
    await run(client.unbind)


async def test_without_shared_calls_submits_and_receipt_requests_are_kept_alike(
    api, admin_headers, settings, pool, conn
):
    """SMSGW_ACCEPT_CALLS=0: each whole message in an accept call of its own, its receipt
    request committed just before; a refused submit's request is taken back."""
    alone = Listener(
        msgspec.structs.replace(settings, accept_calls=0),
        pool,
        scheduler=ProcrastinateScheduler(),
    )
    await alone.start("127.0.0.1", 0)
    try:
        tenant = await smpp_tenant(api, admin_headers, credit=3 * 7_900)
        client = tenant.esme(alone)
        await run(client.bind)
        answers = await run(
            client.submit_many,
            [
                {"destination_addr": TO, "text": f"alone {i}", "registered_delivery": 1}
                for i in range(4)
            ],
            window=4,
        )
        await run(client.unbind)
    finally:
        await alone.close()
    accepted = {message_id for status, message_id in answers if status == e.ESME_ROK}
    assert sorted(status for status, _ in answers) == [e.ESME_ROK] * 3 + [e.ESME_RSUBMITFAIL]
    cursor = await conn.execute(
        "SELECT count(*) AS messages, count(DISTINCT xmin::text) AS calls FROM messages"
    )
    assert dict(await cursor.fetchone()) == {"messages": 3, "calls": 3}
    cursor = await conn.execute("SELECT message_id FROM smpp_receipt_requests")
    assert {row["message_id"].hex for row in await cursor.fetchall()} == accepted
    assert await support.violations(conn) == []


async def test_a_long_udh_message_is_one_message_of_n_segments(api, admin_headers, listener, conn):
    tenant = await smpp_tenant(api, admin_headers)
    client = tenant.esme(listener)
    await run(client.bind)
    parts = e.long_message_parts(LONG_GSM)
    assert len(parts) == 4
    answers = await run(
        client.submit_many,
        [{"destination_addr": TO, "registered_delivery": 1, **part} for part in parts],
        window=1,  # one at a time: the parts before the last are answered at once
    )
    assert {status for status, _ in answers} == {e.ESME_ROK}
    ids = {message_id for _, message_id in answers}
    assert len(ids) == 1  # every part answered with the id of the whole
    message = await support.message(api, tenant.tenant, ids.pop())
    assert message["body"] == LONG_GSM
    assert (message["segments"], message["price"]) == (4, 4 * 7_900)
    cursor = await conn.execute("SELECT count(*) AS n FROM messages")
    assert (await cursor.fetchone())["n"] == 1
    assert (await support.balance(api, tenant.tenant))["held"] == 4 * 7_900
    await run(client.unbind)


async def test_sar_parts_over_two_binds_and_out_of_order_make_one_message(
    api, admin_headers, listener
):
    """UCS-2 parts with SAR TLVs, the last one first, the others over a second bind (an
    ESME that spreads parts over its binds, or resends after a drop)."""
    tenant = await smpp_tenant(api, admin_headers)
    text = "Доставка завтра с 9 до 18 часов, курьер позвонит за час 🚚 " * 3
    octets = text.encode("utf-16-be")
    chunks = [octets[i : i + 134] for i in range(0, len(octets), 134)]
    assert len(chunks) == 3
    sar = [
        {
            "destination_addr": TO,
            "data_coding": 8,
            "short_message": chunk,
            "sar_msg_ref_num": 0x1234,
            "sar_total_segments": len(chunks),
            "sar_segment_seqnum": number,
        }
        for number, chunk in enumerate(chunks, start=1)
    ]
    one, two = tenant.esme(listener), tenant.esme(listener, bind_as="transmitter")
    await run(one.bind)
    await run(two.bind)
    last = await run(one.submit, **sar[2])
    rest = await run(two.submit_many, sar[:2], window=2)
    assert {status for status, _ in [last, *rest]} == {e.ESME_ROK}
    assert {message_id for _, message_id in [last, *rest]} == {last[1]}
    message = await support.message(api, tenant.tenant, last[1])
    assert message["body"] == text
    assert (message["encoding"], message["segments"]) == ("UCS-2", 3)
    for client in (one, two):
        await run(client.unbind)


async def test_a_throttled_last_part_completes_the_message_when_resent(
    api, admin_headers, listener, conn
):
    tenant = await smpp_tenant(api, admin_headers, rate_limit_mps=1)
    client = tenant.esme(listener)
    await run(client.bind)
    # The bucket's one token goes to a single message first.
    assert (await run(client.submit, destination_addr=TO, text="first"))[0] == e.ESME_ROK
    parts = [{"destination_addr": TO, **part} for part in e.long_message_parts(LONG_GSM)]
    answers = await run(client.submit_many, parts, window=1)
    assert [status for status, _ in answers] == [0, 0, 0, e.ESME_RTHROTTLED]
    cursor = await conn.execute("SELECT count(*) AS n FROM messages")
    assert (await cursor.fetchone())["n"] == 1
    # As an ESME does with ESME_RTHROTTLED: wait, send that part again.
    await asyncio.sleep(1.1)
    status, message_id = await run(client.submit, **parts[-1])
    assert (status, message_id) == (e.ESME_ROK, answers[0][1])
    message = await support.message(api, tenant.tenant, message_id)
    assert (message["body"], message["segments"]) == (LONG_GSM, 4)
    await run(client.unbind)
