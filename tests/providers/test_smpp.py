"""The SMPP adapter against a real SMSC on loopback (tests/providers/smsc.py), whose PDUs
are decoded and encoded by another library (smpp34) than the adapter's (aiosmpplib)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import pytest

from core import segments
from providers.base import Accepted, PermanentError, TransientError
from providers.smpp import SmppBindError, SmppProvider
from providers.smpp_codec import split_text
from providers.smpp_flow import Window
from tests.providers.smpp_support import Sink, outbound, send_until_accepted, settings
from tests.providers.smsc import ENQUIRE_LINK_RESP, ESME_RTHROTTLED, Bind, Smsc, reassemble

CYRILLIC_AND_EMOJI = "Привет, мир! Доставка 😀 завтра в 10:00. " * 4
GSM_WITH_EXTENSIONS = "Total: 5€ {paid} [ok] ~ ^ | \\ and more text to fill the parts. " * 6


async def test_two_thousand_messages_through_throttling_each_accepted_and_delivered_once(
    smsc: Smsc,
) -> None:
    smsc.throttle_every = 10
    smsc.submit_id_form, smsc.receipt_id_form, smsc.receipt_tlv = "hex", "decimal", False
    sink = Sink()
    provider = SmppProvider(
        settings(smsc, window=10, submit_id_base=16, receipt_id_base=10), sink=sink
    )
    messages = [outbound(f"Order {i} is on its way", to=f"+4477009{i:05d}") for i in range(2000)]

    accepted, transient = await send_until_accepted(provider, messages)

    assert len(accepted) == 2000
    assert len(set(accepted.values())) == 2000
    assert set(transient) == {"throttled"}
    assert transient["throttled"] == sum(s.status == ESME_RTHROTTLED for s in smsc.submits) >= 200
    receipts = await sink.wait_for(2000)
    await provider.close()
    assert len(sink.receipts) == 2000
    assert Counter(r.provider_message_id for r in receipts) == Counter(accepted.values())
    assert {(r.status, r.error_code, r.provider) for r in receipts} == {("delivered", None, "smpp")}
    assert smsc.receipt_acks == 2000


async def test_long_ucs2_message_arrives_as_udh_parts_and_reassembles(smsc: Smsc) -> None:
    message = outbound(CYRILLIC_AND_EMOJI)
    assert (message.encoding, message.segments) == ("UCS-2", 3)
    sink = Sink()
    provider = SmppProvider(settings(smsc), sink=sink)

    [result] = await provider.send([message])

    assert isinstance(result, Accepted)
    assert [(s.esm_class, s.data_coding) for s in smsc.submits] == [(0x40, 8)] * 3
    assert all(len(s.short_message) <= 6 + 67 * 2 for s in smsc.submits)
    assert reassemble(smsc.submits) == [(8, CYRILLIC_AND_EMOJI)]
    # The SMSC gave each part an id and a receipt; the message gets one, under part 1's id.
    assert result.provider_message_id == smsc.submits[0].message_id
    [receipt] = await sink.wait_for(1)
    await provider.close()
    assert (receipt.provider_message_id, receipt.status) == (
        result.provider_message_id,
        "delivered",
    )
    assert smsc.receipt_acks == 3
    assert len(sink.receipts) == 1


async def test_long_gsm7_message_with_extension_characters_reassembles(smsc: Smsc) -> None:
    message = outbound(GSM_WITH_EXTENSIONS)
    assert message.encoding == "GSM-7"
    assert message.segments >= 3
    provider = SmppProvider(settings(smsc))

    results = await provider.send([message, outbound("Short one")])
    await provider.close()

    assert all(isinstance(r, Accepted) for r in results)
    long_parts = [s for s in smsc.submits if s.esm_class == 0x40]
    assert len(long_parts) == message.segments
    assert {s.data_coding for s in smsc.submits} == {0}
    # Unpacked septets: one octet per septet, escape pairs whole within a part.
    assert all(len(s.short_message) - 6 <= 153 for s in long_parts)
    assert sorted(reassemble(smsc.submits)) == sorted([(0, GSM_WITH_EXTENSIONS), (0, "Short one")])
    short = next(s for s in smsc.submits if s.esm_class == 0)
    assert (short.short_message, short.source, short.source_ton) == (b"Short one", "ACME", 5)
    assert short.destination == "447700900001"
    assert short.registered_delivery == 1


async def test_connection_dropped_mid_stream_reconnects_and_in_flight_come_back_transient(
    smsc: Smsc,
) -> None:
    smsc.response_delay = 0.005
    smsc.drop_at_submit = 25
    provider = SmppProvider(settings(smsc, window=10))
    messages = [outbound(f"Message {i}", to=f"+4477009{i:05d}") for i in range(60)]

    first = await provider.send(messages)

    lost = Counter(r.code for r in first if isinstance(r, TransientError))
    # Those in the window at the drop, then those sent while it was down.
    assert lost["smpp_connection_lost"] > 0
    assert set(lost) <= {"smpp_connection_lost", "smpp_unavailable"}
    answered = {s.message_id for s in smsc.submits if s.message_id is not None}
    # Nothing the SMSC never answered is reported accepted.
    assert {r.provider_message_id for r in first if isinstance(r, Accepted)} <= answered
    again = [m for m, r in zip(messages, first, strict=True) if isinstance(r, TransientError)]
    accepted, _ = await send_until_accepted(provider, again)
    await provider.close()

    assert len(accepted) == len(again)
    assert [b.accepted for b in smsc.binds] == [True, True]
    all_ids = [r.provider_message_id for r in first if isinstance(r, Accepted)]
    all_ids += list(accepted.values())
    assert len(all_ids) == len(set(all_ids)) == 60


async def test_enquire_link_sent_on_its_timer_and_answered(smsc: Smsc) -> None:
    provider = SmppProvider(settings(smsc, enquire_link_seconds=0.01))
    await provider.start()

    assert await smsc.enquire_link() == ENQUIRE_LINK_RESP
    await smsc.wait_until(lambda: smsc.enquire_links >= 3)
    await provider.close()
    assert smsc.unbinds == 1


async def test_wrong_password_is_refused_clearly(smsc: Smsc) -> None:
    provider = SmppProvider(settings(smsc, password="wrong"))

    with pytest.raises(SmppBindError, match="ESME_RINVPASWD"):
        await provider.start()
    [result] = await provider.send([outbound()])
    await provider.close()

    assert isinstance(result, TransientError)
    assert result.code == "smpp_unavailable"
    assert "ESME_RINVPASWD" in result.message
    assert smsc.binds[0] == Bind("smsgw", "wrong", "gw", accepted=False)
    assert not smsc.submits


async def test_rejected_destination_is_permanent(smsc: Smsc) -> None:
    smsc.reject = {"447700900009": 0x0B, "447700900008": 0x08}
    provider = SmppProvider(settings(smsc))

    results = await provider.send([outbound(to="+447700900009"), outbound(to="+447700900008")])
    await provider.close()

    assert results == [
        PermanentError("ESME_RINVDSTADR", "SMSC rejected the message: ESME_RINVDSTADR"),
        TransientError("ESME_RSYSERR", "SMSC answered ESME_RSYSERR"),
    ]


async def test_unanswered_submit_times_out_without_ending_the_session(smsc: Smsc) -> None:
    smsc.ignore = {"447700900007"}
    provider = SmppProvider(settings(smsc, submit_timeout_seconds=0.05))

    results = await provider.send([outbound(to="+447700900007"), outbound(to="+447700900001")])
    [later] = await provider.send([outbound()])
    await provider.close()

    assert isinstance(results[0], TransientError)
    assert results[0].code == "smpp_timeout"
    assert isinstance(results[1], Accepted)
    assert isinstance(later, Accepted)
    assert len(smsc.binds) == 1


async def test_window_bounds_outstanding_submits(smsc: Smsc) -> None:
    smsc.response_delay = 0.002
    provider = SmppProvider(settings(smsc, window=4))

    results = await provider.send([outbound(to=f"+4477009000{i:02d}") for i in range(40)])
    await provider.close()

    assert all(isinstance(r, Accepted) for r in results)
    assert smsc.max_outstanding == 4


@pytest.mark.parametrize(
    "body",
    [
        "a" * 160,
        "a" * 161,
        "€" * 81,
        "a" * 152 + "€" + "a" * 10,
        "😀" * 35 + "a",
        "ж" * 66 + "😀" + "ж" * 10,
        GSM_WITH_EXTENSIONS,
        CYRILLIC_AND_EMOJI,
    ],
)
def test_parts_split_where_core_counts_them(body: str) -> None:
    assert split_text(body, segments.encoding_of(body)) == segments.split(body)


async def test_throttling_halves_the_window_and_pauses_then_it_grows_back() -> None:
    window = Window(8, pause=0.02)
    taken = [await window.acquire() for _ in range(8)]

    window.release(taken[0], "throttled")
    window.release(taken[1], "throttled")  # sent before the cut: no second cut
    for taken_at in taken[2:]:
        window.release(taken_at, "other")

    assert window.limit == 4
    resume_at = window._resume_at
    assert await window.acquire() >= resume_at  # nobody sends during the pause
    window.release(resume_at, "accepted")
    for _ in range(3):
        window.release(await window.acquire(), "accepted")
    assert window.limit == 5


async def test_the_window_serves_waiters_in_order_and_loses_no_slot_to_a_cancel() -> None:
    window = Window(1, pause=0.0)
    held = await window.acquire()
    order: list[str] = []

    async def send(name: str) -> None:
        taken = await window.acquire()
        order.append(name)
        await asyncio.sleep(0)
        window.release(taken, "accepted")

    tasks = {name: asyncio.create_task(send(name)) for name in "abc"}
    await asyncio.sleep(0)  # all three wait, in this order
    tasks["b"].cancel()  # gives up while waiting
    window.release(held, "accepted")
    await asyncio.gather(tasks["a"], tasks["c"])
    assert order == ["a", "c"]

    # A waiter handed the slot and cancelled before it could use it gives the slot back:
    # the next send does not wait forever.
    held = await window.acquire()
    handed = asyncio.create_task(window.acquire())
    await asyncio.sleep(0)
    window.release(held, "accepted")  # the slot goes to `handed`, which has not run yet
    handed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await handed
    window.release(await asyncio.wait_for(window.acquire(), 1), "accepted")


async def test_source_ton_and_npi_follow_the_kind_of_sender(smsc: Smsc) -> None:
    provider = SmppProvider(settings(smsc))
    senders = ["ACME", "+14155550100", "12345", "14155550100"]
    results = await provider.send([outbound(f"from {s}", sender=s) for s in senders])
    await provider.close()
    assert all(isinstance(r, Accepted) for r in results)
    seen = {s.short_message.decode(): (s.source, s.source_ton, s.source_npi) for s in smsc.submits}
    assert seen == {
        "from ACME": ("ACME", 5, 0),  # alphanumeric
        "from +14155550100": ("14155550100", 1, 1),  # international, ISDN
        "from 12345": ("12345", 3, 0),  # a short code: network specific
        "from 14155550100": ("14155550100", 1, 1),
    }
