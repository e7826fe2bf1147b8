"""The SMPP adapter receiving from a real SMSC on loopback: delivery receipts (matched to
submit ids whatever their base) and mobile-originated messages."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import smpp34

from providers.base import Accepted
from providers.smpp import SmppProvider
from providers.smpp_codec import Concatenation
from providers.smpp_inbound import InboundMessage
from providers.smpp_receipts import canonical_message_id
from tests.providers.smpp_support import Sink, outbound, settings
from tests.providers.smsc import Smsc


@pytest.mark.parametrize(
    ("submit_form", "receipt_form", "tlv", "submit_base", "receipt_base"),
    [
        pytest.param("hex", "decimal", False, 16, 10, id="hex-submit-decimal-text"),
        pytest.param("decimal", "hex", False, 10, 16, id="decimal-submit-hex-text"),
        pytest.param("hex", "decimal", True, 16, 10, id="hex-tlv-preferred-over-text"),
        pytest.param("opaque", "opaque", False, None, None, id="opaque-ids-from-text"),
    ],
)
async def test_receipts_match_submit_ids_across_hex_and_decimal(
    smsc: Smsc,
    submit_form: Any,
    receipt_form: Any,
    tlv: bool,
    submit_base: int | None,
    receipt_base: int | None,
) -> None:
    smsc.submit_id_form, smsc.receipt_id_form, smsc.receipt_tlv = submit_form, receipt_form, tlv
    smsc.receipt_stat = {"447700900002": "UNDELIV"}
    sink = Sink()
    config = settings(smsc, submit_id_base=submit_base, receipt_id_base=receipt_base)
    provider = SmppProvider(config, sink=sink, name="carrier")

    results = await provider.send([outbound(to=f"+44770090000{i}") for i in range(1, 5)])

    ids = [r.provider_message_id for r in results if isinstance(r, Accepted)]
    assert len(ids) == 4
    receipts = {r.provider_message_id: r for r in await sink.wait_for(4)}
    await provider.close()
    assert sorted(receipts) == sorted(ids)
    assert receipts[ids[1]].status == "undelivered"
    assert receipts[ids[1]].error_code == "UNDELIV:001"
    assert {receipts[i].status for i in (ids[0], ids[2], ids[3])} == {"delivered"}
    assert {r.provider for r in receipts.values()} == {"carrier"}


@pytest.mark.parametrize(
    ("raw", "base", "canonical"),
    [
        ("1A2B", 16, "1a2b"),
        ("001a2b", 16, "1a2b"),
        ("6699", 10, "1a2b"),
        ("0006699", 10, "1a2b"),
        (" 6699\x00", 10, "1a2b"),
        ("6699", 16, "6699"),
        ("1A2B", None, "1A2B"),
        ("msg-7", 16, "msg-7"),
    ],
)
def test_canonical_message_id(raw: str, base: int | None, canonical: str) -> None:
    assert canonical_message_id(raw, base) == canonical


async def test_receipt_read_from_text_alone_and_from_message_state(smsc: Smsc) -> None:
    sink = Sink()
    provider = SmppProvider(settings(smsc, submit_id_base=16, receipt_id_base=10), sink=sink)
    await provider.start()

    text_only = smpp34.DeliverSm(
        "447700900001",
        "ACME",
        b"id:0000006699 sub:001 dlvrd:000 submit date:2501011200 done date:250101120159 "
        b"stat:EXPIRED err:000 Text:caf\xe9 - unicode in latin-1",
        esm_class=0x04,
    )
    state_only = smpp34.DeliverSm(
        "447700900001",
        "ACME",
        b"",
        esm_class=0x04,
        tlvs=[smpp34.Tlv(0x001E, b"00BEEF\x00"), smpp34.Tlv(0x0427, bytes([2]))],
    )
    assert await smsc.deliver(text_only) == 0
    assert await smsc.deliver(state_only) == 0
    receipts = await sink.wait_for(2)
    await provider.close()
    assert [(r.provider_message_id, r.status, r.error_code) for r in receipts] == [
        ("1a2b", "undelivered", "EXPIRED"),
        ("beef", "delivered", None),
    ]


async def test_mobile_originated_parts_reach_the_inbound_callback(smsc: Smsc) -> None:
    received: list[InboundMessage] = []
    arrived = asyncio.Event()

    async def inbound(message: InboundMessage) -> None:
        received.append(message)
        if len(received) == 2:
            arrived.set()

    provider = SmppProvider(settings(smsc), inbound=inbound)
    await provider.start()
    first = "Привет".encode("utf-16-be")
    second = smpp34.DeliverSm(
        "447700900001", "12345", b"\x05\x00\x03\x2a\x02\x02Hi {there}", esm_class=0x40
    )
    assert (
        await smsc.deliver(
            smpp34.DeliverSm(
                "447700900001",
                "12345",
                b"\x05\x00\x03\x2a\x02\x01" + first,
                esm_class=0x40,
                data_coding=8,
            )
        )
        == 0
    )
    assert await smsc.deliver(second) == 0
    async with asyncio.timeout(5):
        await arrived.wait()
    await provider.close()

    assert [(m.source, m.destination, m.text, m.concatenation) for m in received] == [
        ("447700900001", "12345", "Привет", Concatenation(42, 2, 1)),
        ("447700900001", "12345", "Hi äthereñ", Concatenation(42, 2, 2)),
    ]
