"""What a submit_sm asks for, in the gateway's terms: addresses as the REST API spells
them, the text's octets and coding, the part of a long message it is (UDH or SAR), the
receipt it wants, and its times. Everything that can be judged from one PDU alone is
judged here; the text is decoded once all of a message's parts are together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core import segments, submission
from smpp_server import pdu, submit_sm
from smpp_server.status import (
    ESME_RINVDSTADR,
    ESME_RINVDSTTON,
    ESME_RINVESMCLASS,
    ESME_RINVEXPIRY,
    ESME_RINVMSGLEN,
    ESME_RINVOPTPARAMVAL,
    ESME_RINVPARLEN,
    ESME_RINVSCHED,
    ESME_RMISSINGOPTPARAM,
    ESME_RSUBMITFAIL,
    Refused,
)

SUPPORTED_CODINGS = frozenset({0, 1, 3, 8})
TON_UNKNOWN, TON_INTERNATIONAL, TON_ALPHANUMERIC = 0, 1, 5
_SAR = (
    submit_sm.TLV_SAR_MSG_REF_NUM,
    submit_sm.TLV_SAR_TOTAL_SEGMENTS,
    submit_sm.TLV_SAR_SEGMENT_SEQNUM,
)


@dataclass(frozen=True, slots=True)
class Submission:
    to: str
    sender: str | None
    data_coding: int
    # The message's octets (short_message or message_payload), without any UDH.
    payload: bytes
    # Which part of a long message this is; None for a whole message.
    part: submit_sm.Concatenation | None
    # 0: no receipt; 1: a receipt for any final state; 2: for failures only.
    receipt: int
    send_at: datetime | None
    validity_seconds: int | None

    def request(self, body: str) -> submission.SendRequest:
        return submission.SendRequest(
            to=self.to,
            body=body,
            sender=self.sender,
            send_at=self.send_at,
            validity_seconds=self.validity_seconds,
        )


def _recipient(sm: submit_sm.SubmitSm) -> str:
    digits = sm.destination.removeprefix("+")
    if not digits:
        raise Refused(ESME_RINVDSTADR, "destination_addr is empty")
    if sm.destination_ton not in (TON_UNKNOWN, TON_INTERNATIONAL):
        # A national or subscriber number needs a country smsgw cannot guess.
        raise Refused(ESME_RINVDSTTON, f"destination TON {sm.destination_ton} is not supported")
    return "+" + digits


def _sender(sm: submit_sm.SubmitSm) -> str | None:
    value = sm.source
    if not value:
        return None
    if sm.source_ton == TON_ALPHANUMERIC:
        return value
    digits = value.removeprefix("+")
    if sm.source_ton == TON_INTERNATIONAL or value.startswith("+"):
        return "+" + digits
    if digits.isdigit() and len(digits) > 8:
        # Longer than a short code, with TON unknown: an international number.
        return "+" + digits
    return value


def _concatenation(
    sm: submit_sm.SubmitSm, octets: bytes
) -> tuple[submit_sm.Concatenation | None, bytes]:
    part: submit_sm.Concatenation | None = None
    if sm.esm_class & submit_sm.ESM_CLASS_UDHI:
        try:
            part, others, octets = submit_sm.split_udh(octets)
        except pdu.MalformedPdu as exc:
            raise Refused(ESME_RINVESMCLASS, str(exc)) from None
        if others:
            # smsgw sends text and builds its own UDH: ports or language tables would
            # be lost on the way, changing what the handset does with the message.
            raise Refused(ESME_RINVESMCLASS, "UDH carries more than concatenation")
        if part is not None and not 1 <= part.number <= part.total:
            raise Refused(ESME_RINVESMCLASS, f"part {part.number} of {part.total}")
    elif any(tag in sm.tlvs for tag in _SAR):
        if not all(tag in sm.tlvs for tag in _SAR):
            raise Refused(ESME_RMISSINGOPTPARAM, "SAR needs all three sar_* parameters")
        reference, total, number = (sm.tlvs[tag] for tag in _SAR)
        if (len(reference), len(total), len(number)) != (2, 1, 1):
            raise Refused(ESME_RINVPARLEN, "sar_* parameters of the wrong length")
        part = submit_sm.Concatenation(int.from_bytes(reference, "big"), total[0], number[0])
        if not 1 <= part.number <= part.total:
            raise Refused(ESME_RINVOPTPARAMVAL, f"SAR segment {part.number} of {part.total}")
    if part is not None and part.total == 1:
        part = None
    if part is not None and part.total > segments.MAX_SEGMENTS:
        raise Refused(ESME_RINVMSGLEN, f"{part.total} parts; at most 10 segments are allowed")
    return part, octets


def read(sm: submit_sm.SubmitSm, now: datetime) -> Submission:
    """Refused (with the status to answer) for what this PDU alone shows is wrong."""
    if sm.esm_class & 0x3C:
        raise Refused(ESME_RINVESMCLASS, "esm_class message type must be default (0)")
    to = _recipient(sm)
    sender = _sender(sm)
    octets = sm.short_message
    payload = sm.tlvs.get(submit_sm.TLV_MESSAGE_PAYLOAD)
    if payload is not None:
        if octets:
            raise Refused(ESME_RINVOPTPARAMVAL, "short_message and message_payload both set")
        octets = payload
    part, octets = _concatenation(sm, octets)
    if sm.data_coding not in SUPPORTED_CODINGS:
        raise Refused(ESME_RSUBMITFAIL, f"data_coding 0x{sm.data_coding:02X} is not supported")
    try:
        send_at = submit_sm.parse_time(sm.schedule_delivery_time, now)
    except ValueError as exc:
        raise Refused(ESME_RINVSCHED, str(exc)) from None
    if send_at is not None and send_at <= now:
        send_at = None  # due already: send now, as an SMSC does
    try:
        expires_at = submit_sm.parse_time(sm.validity_period, now)
    except ValueError as exc:
        raise Refused(ESME_RINVEXPIRY, str(exc)) from None
    validity: int | None = None
    if expires_at is not None:
        # ESMEs ask for whatever their SMSC contract says; smsgw's bounds apply.
        seconds = (expires_at - (send_at or now)).total_seconds()
        validity = int(
            min(
                max(seconds, submission.MIN_VALIDITY_SECONDS),
                submission.MAX_VALIDITY_SECONDS,
            )
        )
    # Bits 0-1: 01 a receipt on success or failure, 10 on failure only (11 is reserved
    # in 3.4; SMPP 5 makes it "success only": answered as 01, the safe superset).
    mode = sm.registered_delivery & 0x03
    return Submission(
        to=to,
        sender=sender,
        data_coding=sm.data_coding,
        payload=octets,
        part=part,
        receipt=1 if mode == 3 else mode,
        send_at=send_at,
        validity_seconds=validity,
    )


def text(data_coding: int, octets: bytes) -> str:
    try:
        return submit_sm.decode_text(data_coding, octets)
    except ValueError as exc:
        raise Refused(ESME_RSUBMITFAIL, f"text not valid in its data_coding: {exc}") from None
