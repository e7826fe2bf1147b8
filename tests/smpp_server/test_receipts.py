"""Delivery receipts back to the tenant's receiver binds as deliver_sm: the standard
receipt text with receipted_message_id and message_state, only when asked for, waiting
in the database while no bind is up; and inbound messages the same way."""

from __future__ import annotations

import asyncio

import msgspec

from jobs.scheduler import ProcrastinateScheduler
from smpp_server.server import Listener
from tests import support, two_way, workers
from tests.smpp_server import esme as e
from tests.smpp_server.conftest import smpp_tenant
from tests.workers import eventually

run = asyncio.to_thread
TO = "14155552671"


async def _outbox(conn) -> int:
    cursor = await conn.execute("SELECT count(*) AS n FROM smpp_outbox")
    return int((await cursor.fetchone())["n"])


async def test_five_thousand_submits_in_a_window_of_ten_all_get_receipts_across_a_reconnect(
    api, admin_headers, listener, settings, conn
):
    tenant = await smpp_tenant(api, admin_headers, credit=100_000_000)
    texts = [f"Your code is {i:06d}, valid 10 minutes" for i in range(5_000)]
    messages = [{"destination_addr": TO, "text": t, "registered_delivery": 1} for t in texts]
    first = tenant.esme(listener)
    async with workers.in_process(settings):
        await run(first.bind)
        answers = await run(first.submit_many, messages[:2_500], window=10)
        # The link is cut (no unbind). Messages keep being delivered meanwhile, and
        # their receipts wait in the database for a receiver bind.
        await run(first.drop)
        await eventually(lambda: _outbox(conn), timeout=60)
        second = tenant.esme(listener)
        await run(second.bind)
        answers += await run(second.submit_many, messages[2_500:], window=10)
        assert {status for status, _ in answers} == {e.ESME_ROK}
        ids = [message_id for _, message_id in answers]
        assert len(set(ids)) == 5_000

        def receipted() -> set[str | None]:
            return {d.receipted_message_id for d in [*first.receipts(), *second.receipts()]}

        await run(second.read_until, lambda: set(ids) <= receipted(), 120)
        await run(second.unbind)
    # Every receipt is a DELIVRD receipt for one of our messages, text and TLVs agreeing.
    by_id = {d.receipted_message_id: d for d in [*first.receipts(), *second.receipts()]}
    assert set(by_id) == set(ids)
    for message_id, text in zip(ids, texts, strict=True):
        receipt = by_id[message_id]
        fields = receipt.receipt_fields()
        assert fields["id"] == message_id
        assert (fields["sub"], fields["dlvrd"], fields["stat"], fields["err"]) == (
            "001",
            "001",
            "DELIVRD",
            "000",
        )
        assert fields["text"] == text[:20]
        assert receipt.message_state == 2  # DELIVERED
        assert (receipt.source, receipt.destination) == (TO, tenant.source)
    balance = await support.balance(api, tenant.tenant)
    assert (balance["held"], balance["captured"]) == (0, 5_000 * 7_900)
    await eventually(lambda: _no_outbox(conn))


async def test_receipts_only_when_asked_and_they_wait_for_a_receiver_bind(
    api, admin_headers, listener, conn
):
    tenant = await smpp_tenant(api, admin_headers)
    transmitter = tenant.esme(listener, bind_as="transmitter")
    await run(transmitter.bind)
    # In an hour (relative time), each asking for: any receipt, failures only, none.
    answers = await run(
        transmitter.submit_many,
        [
            {
                "destination_addr": TO,
                "text": f"Reminder {mode}: your appointment is tomorrow",
                "registered_delivery": mode,
                "schedule_delivery_time": "000000010000000R",
            }
            for mode in (1, 2, 0)
        ],
        window=3,
    )
    ids = [message_id for _, message_id in answers]
    for message_id in ids:
        message = (
            await api.get(f"/v1/messages/{message_id}", headers=tenant.tenant.headers)
        ).json()
        assert message["status"] == "scheduled"
        canceled = await api.post(
            f"/v1/messages/{message_id}/cancel", headers=tenant.tenant.headers
        )
        assert canceled.status_code == 200, canceled.text
    # No receiver bind is up: the two receipts wait.
    assert await _outbox(conn) == 2
    # A receipt is once per message: a later change of a finished message (an
    # operator's UPDATE from one final status to another) queues no second one.
    await conn.execute(
        "UPDATE messages SET status = 'expired', updated_at = clock_timestamp()"
        " WHERE id = ANY(%s::uuid[])",
        (ids,),
    )
    assert await _outbox(conn) == 2
    receiver = tenant.esme(listener, bind_as="receiver")
    await run(receiver.bind)
    await run(receiver.read_until, lambda: len(list(receiver.receipts())) == 2, 30)
    receipts = {d.receipted_message_id: d for d in receiver.receipts()}
    assert set(receipts) == {ids[0], ids[1]}
    for message_id in ids[:2]:
        fields = receipts[message_id].receipt_fields()
        assert (fields["id"], fields["stat"], fields["dlvrd"], fields["err"]) == (
            message_id,
            "DELETED",
            "000",
            "001",
        )
        assert len(fields["submit_date"]) == len(fields["done_date"]) == 10  # YYMMDDhhmm
        assert receipts[message_id].message_state == 4  # DELETED
    await eventually(lambda: _no_outbox(conn))
    for client in (transmitter, receiver):
        await run(client.unbind)


async def _no_outbox(conn) -> bool:
    return await _outbox(conn) == 0


async def test_a_receipt_the_esme_refuses_for_now_comes_again(api, admin_headers, listener, conn):
    tenant = await smpp_tenant(api, admin_headers)
    refusals = 0

    def answer(deliver: e.Deliver) -> int:
        nonlocal refusals
        if refusals == 0:
            refusals += 1
            return e.ESME_RX_T_APPN  # the ESME's queue is full: try later
        return e.ESME_ROK

    client = tenant.esme(listener, answer=answer)
    await run(client.bind)
    _, message_id = await run(
        client.submit, destination_addr=TO, text="cancel me", registered_delivery=1
    )
    await api.post(f"/v1/messages/{message_id}/cancel", headers=tenant.tenant.headers)
    await run(client.read_until, lambda: len(list(client.receipts())) == 1, 30)
    assert refusals == 1
    assert next(client.receipts()).receipted_message_id == message_id
    await run(client.unbind)


async def test_inbound_messages_to_the_tenants_numbers_reach_its_receiver_binds(
    api, admin_headers, listener
):
    """An inbound message (issue 8's HTTP inbound webhook, a real provider's path) to a
    number the tenant owns arrives on its receiver bind as a deliver_sm."""
    await two_way.http_provider(api, admin_headers)
    tenant = await smpp_tenant(api, admin_headers)
    await two_way.own(api, admin_headers, tenant.tenant, two_way.OUR_NUMBER)
    receiver = tenant.esme(listener, bind_as="receiver")
    await run(receiver.bind)
    await two_way.text_in(api, "Hi! Ünïcode ✓", id="mo-1", frm=support.VALID_TO)
    await run(receiver.read_until, lambda: len(receiver.received) == 1, 30)
    (mobile,) = receiver.received
    assert not mobile.is_receipt
    assert (mobile.source, mobile.destination) == (TO, "14155550100")
    assert mobile.data_coding == 8
    assert mobile.short_message.decode("utf-16-be") == "Hi! Ünïcode ✓"
    await run(receiver.unbind)


async def test_a_long_message_whose_last_part_never_comes_is_billed_nothing(
    api, admin_headers, settings, pool, conn
):
    """Its parts are dropped after the reassembly timeout, and the ESME, which was given
    an id for the parts it sent, gets a REJECTD receipt for that id."""
    quick = msgspec.structs.replace(settings, smpp_reassembly_seconds=0.3)
    server = Listener(quick, pool, scheduler=ProcrastinateScheduler(), refresh_seconds=0.1)
    await server.start("127.0.0.1", 0)
    try:
        tenant = await smpp_tenant(api, admin_headers)
        client = tenant.esme(server)
        await run(client.bind)
        first, *_rest = e.long_message_parts("A long message that loses its tail. " * 8)
        status, message_id = await run(
            client.submit, destination_addr=TO, registered_delivery=1, **first
        )
        assert status == e.ESME_ROK
        await run(client.read_until, lambda: any(True for _ in client.receipts()), 30)
        (receipt,) = client.receipts()
        assert receipt.receipted_message_id == message_id
        assert receipt.receipt_fields()["stat"] == "REJECTD"
        assert receipt.message_state == 8  # REJECTED
        await run(client.unbind)
    finally:
        await server.close()
    assert await support.stored(conn) == support.NOTHING_STORED
    assert (await support.balance(api, tenant.tenant))["held"] == 0
