"""SMPP 3.4 wire pieces for the SMPP adapter: framing, the PDUs it sends, the deliver_sm it
reads, and message splitting with UDH.

The PDUs the adapter originates (bind_transceiver, submit_sm, enquire_link, unbind and
the responses) and the GSM 03.38 alphabet come from aiosmpplib. Headers and deliver_sm
bodies are parsed here instead: aiosmpplib's parsers reject command_status values outside
the spec's table (SMSCs use vendor codes 0x400-0x4FF) and dates or error codes in receipts
that are not exactly as the spec's appendix shows, and either would end the session.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Literal

from aiosmpplib import (
    NPI,
    TON,
    BindTransceiver,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    GSM7BitCodec,
    PhoneNumber,
    SmppCommandStatus,
    SubmitSm,
    Unbind,
    UnbindResp,
)

HEADER = struct.Struct("!IIII")
MAX_PDU_LENGTH = 64 * 1024 + 1024

GENERIC_NACK = 0x80000000
BIND_TRANSCEIVER = 0x00000009
BIND_TRANSCEIVER_RESP = 0x80000009
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015
ALERT_NOTIFICATION = 0x00000102
RESPONSE_BIT = 0x80000000

ESME_ROK = 0x00
ESME_RINVCMDID = 0x03
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58

# submit_sm_resp statuses that reject the message itself: sending it again cannot help.
# ESME_RSUBMITFAIL (0x45) is not among them: SMSCs use it for "could not store or route
# right now" as often as for bad content, and the dispatcher's retry budget bounds it.
PERMANENT_STATUSES = frozenset(
    {
        0x01,  # ESME_RINVMSGLEN
        0x02,  # ESME_RINVCMDLEN
        0x06,  # ESME_RINVPRTFLG
        0x07,  # ESME_RINVREGDLVFLG
        0x0A,  # ESME_RINVSRCADR
        0x0B,  # ESME_RINVDSTADR
        0x0C,  # ESME_RINVMSGID
        0x33,  # ESME_RINVNUMDESTS
        0x40,  # ESME_RINVDSTFLAG
        0x42,  # ESME_RINVSUBREP
        0x43,  # ESME_RINVESMCLASS
        0x48,  # ESME_RINVSRCTON
        0x49,  # ESME_RINVSRCNPI
        0x50,  # ESME_RINVDSTTON
        0x51,  # ESME_RINVDSTNPI
        0x53,  # ESME_RINVSYSTYP
        0x54,  # ESME_RINVREPFLAG
        0x61,  # ESME_RINVSCHED
        0x62,  # ESME_RINVEXPIRY
        0x63,  # ESME_RINVDFTMSGID
        0x65,  # ESME_RX_P_APPN
        0x66,  # ESME_RX_R_APPN
        0xC0,  # ESME_RINVOPTPARSTREAM
        0xC1,  # ESME_ROPTPARNOTALLWD
        0xC2,  # ESME_RINVPARLEN
        0xC3,  # ESME_RMISSINGOPTPARAM
        0xC4,  # ESME_RINVOPTPARAMVAL
    }
)
THROTTLING_STATUSES = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})

ESM_CLASS_UDHI = 0x40
ESM_CLASS_RECEIPT = 0x04
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427

_GSM = GSM7BitCodec()
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
# Per part of a concatenated message, after the 6-octet UDH (SMPP carries GSM-7
# unpacked, one septet per octet, so 153 septets + 6 = 159 octets).
_SINGLE_LIMIT = {"GSM-7": 160, "UCS-2": 70}
_PART_LIMIT = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True, slots=True)
class Pdu:
    command_id: int
    status: int
    sequence: int
    body: bytes


def status_name(status: int) -> str:
    try:
        return str(SmppCommandStatus(status).name)
    except ValueError:
        return f"0x{status:08X}"


def parse_header(header: bytes) -> tuple[int, int, int, int]:
    length, command_id, status, sequence = HEADER.unpack(header)
    if not HEADER.size <= length <= MAX_PDU_LENGTH:
        raise ValueError(f"PDU length {length} out of range")
    return length, command_id, status, sequence


def response(command_id: int, sequence: int, status: int = ESME_ROK) -> bytes:
    """A body-less response or request, built with aiosmpplib where it has the PDU."""
    message: Any
    if command_id == ENQUIRE_LINK_RESP:
        message = EnquireLinkResp(sequence_num=sequence)
    elif command_id == UNBIND_RESP:
        message = UnbindResp(sequence_num=sequence)
    elif command_id == ENQUIRE_LINK:
        message = EnquireLink(sequence_num=sequence)
    elif command_id == UNBIND:
        message = Unbind(sequence_num=sequence)
    elif command_id == GENERIC_NACK:
        message = GenericNack(sequence_num=sequence, command_status=SmppCommandStatus(status))
    else:
        raise ValueError(f"no body-less PDU 0x{command_id:08X}")
    return bytes(message.pdu())


def deliver_sm_resp(sequence: int) -> bytes:
    return bytes(DeliverSmResp(sequence_num=sequence).pdu())


def bind_transceiver(
    sequence: int, *, system_id: str, password: str, system_type: str, ton: int, npi: int
) -> bytes:
    message = BindTransceiver(
        sequence_num=sequence,
        system_id=system_id,
        password=password,
        system_type=system_type,
        addr_ton=TON(ton),
        addr_npi=NPI(npi),
    )
    return bytes(message.pdu())


# -- outbound messages ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Part:
    """One submit_sm worth of a message: the short_message octets, UDH included."""

    data_coding: int
    esm_class: int
    short_message: bytes


def _widths(body: str, encoding: str) -> list[int]:
    if encoding == "GSM-7":
        return [2 if char in _GSM_EXTENSION else 1 for char in body]
    return [2 if ord(char) > 0xFFFF else 1 for char in body]


def split_text(body: str, encoding: Literal["GSM-7", "UCS-2"]) -> list[str]:
    """The texts of the parts, packed greedily as core/segments.py counts them: an escape
    pair (GSM-7) or a surrogate pair (UCS-2) never straddles two parts."""
    widths = _widths(body, encoding)
    if sum(widths) <= _SINGLE_LIMIT[encoding]:
        return [body]
    limit = _PART_LIMIT[encoding]
    parts: list[str] = []
    start, room = 0, limit
    for index, width in enumerate(widths):
        if width > room:
            parts.append(body[start:index])
            start, room = index, limit
        room -= width
    parts.append(body[start:])
    return parts


def encode_parts(body: str, encoding: Literal["GSM-7", "UCS-2"], reference: int) -> list[Part]:
    """The submit_sm payloads of a body: GSM-7 as unpacked GSM 03.38 septets (data_coding
    0) or UTF-16-BE (data_coding 8), several parts joined by an 8-bit-reference
    concatenation UDH (esm_class 0x40). Raises ValueError for text the encoding cannot
    carry."""
    if encoding == "GSM-7" and not GSM7BitCodec.is_gsm_text(body):
        # The caller's encoding is a hint; a body outside the alphabet goes as UCS-2.
        encoding = "UCS-2"
    texts = split_text(body, encoding)
    if len(texts) > 255:
        raise ValueError(f"{len(texts)} parts do not fit an 8-bit concatenation UDH")
    data_coding = 0 if encoding == "GSM-7" else 8

    def octets(text: str) -> bytes:
        if encoding == "GSM-7":
            return bytes(_GSM.encode(text)[0])
        return text.encode("utf-16-be")

    if len(texts) == 1:
        return [Part(data_coding, 0, octets(texts[0]))]
    total = len(texts)
    return [
        Part(
            data_coding,
            ESM_CLASS_UDHI,
            bytes((5, 0, 3, reference & 0xFF, total, number)) + octets(text),
        )
        for number, text in enumerate(texts, start=1)
    ]


def submit_sm(
    sequence: int,
    part: Part,
    *,
    source: tuple[str, int, int],
    destination: tuple[str, int, int],
    registered_delivery: int,
) -> bytes:
    """The submit_sm PDU, encoded by aiosmpplib with our pre-built short_message."""
    message = SubmitSm(
        sequence_num=sequence,
        # aiosmpplib wants text here; the octets set below are what goes on the wire.
        short_message="-",
        source=PhoneNumber(source[0], TON(source[1]), NPI(source[2])),
        destination=PhoneNumber(destination[0], TON(destination[1]), NPI(destination[2])),
        esm_class=part.esm_class,
        registered_delivery=registered_delivery,
        encoding="ucs2" if part.data_coding == 8 else None,
    )
    message.set_encoded_message(part.short_message)
    return bytes(message.pdu())


def with_sequence(pdu: bytes, sequence: int) -> bytes:
    """``pdu`` with its header's sequence_number (octets 12-15) set to ``sequence``: a
    part is encoded once, and each submit of it takes the session's next number."""
    return b"".join((pdu[:12], sequence.to_bytes(4, "big"), pdu[16:]))


def submit_sm_resp_id(body: bytes) -> str:
    return body.split(b"\x00", 1)[0].decode("ascii", "replace")


# -- inbound deliver_sm -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliverSm:
    source: str
    destination: str
    esm_class: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]

    @property
    def is_receipt(self) -> bool:
        # Message type bits 2-5 of esm_class: 0001 is an SMSC delivery receipt.
        return (self.esm_class & 0x3C) == ESM_CLASS_RECEIPT


def parse_deliver_sm(body: bytes) -> DeliverSm:
    """The fields of a deliver_sm body we use; raises ValueError when it is malformed."""
    index = 0

    def c_string() -> bytes:
        nonlocal index
        end = body.index(b"\x00", index)
        value = body[index:end]
        index = end + 1
        return value

    def octet() -> int:
        nonlocal index
        value = body[index]
        index += 1
        return value

    try:
        c_string()  # service_type
        index += 2  # source ton, npi
        source = c_string()
        index += 2  # destination ton, npi
        destination = c_string()
        esm_class = octet()
        index += 2  # protocol_id, priority_flag
        c_string()  # schedule_delivery_time
        c_string()  # validity_period
        index += 2  # registered_delivery, replace_if_present_flag
        data_coding = octet()
        index += 1  # sm_default_msg_id
        length = octet()
        short_message = body[index : index + length]
        index += length
        tlvs: dict[int, bytes] = {}
        while index + 4 <= len(body):
            tag, size = struct.unpack_from("!HH", body, index)
            tlvs[tag] = body[index + 4 : index + 4 + size]
            index += 4 + size
    except IndexError as exc:
        raise ValueError("truncated deliver_sm") from exc
    if tlvs.get(0x0424) and not short_message:
        short_message = tlvs[0x0424]  # message_payload
    return DeliverSm(
        source=source.decode("ascii", "replace"),
        destination=destination.decode("ascii", "replace"),
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=tlvs,
    )


@dataclass(frozen=True, slots=True)
class Concatenation:
    reference: int
    total: int
    number: int


def split_udh(short_message: bytes) -> tuple[Concatenation | None, bytes]:
    """The concatenation IE of a UDH (8- or 16-bit reference) and the payload after it."""
    if not short_message:
        return None, b""
    length = short_message[0]
    header, payload = short_message[1 : 1 + length], short_message[1 + length :]
    index = 0
    while index + 2 <= len(header):
        iei, size = header[index], header[index + 1]
        data = header[index + 2 : index + 2 + size]
        if iei == 0x00 and size == 3:
            return Concatenation(data[0], data[1], data[2]), payload
        if iei == 0x08 and size == 4:
            return Concatenation((data[0] << 8) | data[1], data[2], data[3]), payload
        index += 2 + size
    return None, payload
