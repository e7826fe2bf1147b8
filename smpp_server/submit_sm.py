"""A submit_sm body as the ESME sent it: its fields as octets, the UDH of a long message,
SMPP times, and the text codings smsgw carries.

submit_sm bodies are parsed here rather than by aiosmpplib (whose codec pdu.py uses for
everything else), into raw octets: aiosmpplib's parser decodes the text of every part on
its own (an escape or a surrogate pair that straddles two parts fails), keeps no UDH,
reads a 16-bit concatenation reference with the total and number in it, raises on data
codings, TONs and vendor TLVs outside its tables, and reads the quarter-hours of an SMPP
time's offset as hours: each of those would refuse or garble a good message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiosmpplib import GSM7BitCodec

from smpp_server.pdu import MalformedPdu

TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_MESSAGE_PAYLOAD = 0x0424
ESM_CLASS_UDHI = 0x40

_GSM = GSM7BitCodec()


@dataclass(frozen=True, slots=True)
class SubmitSm:
    service_type: str
    source_ton: int
    source_npi: int
    source: str
    destination_ton: int
    destination_npi: int
    destination: str
    esm_class: int
    protocol_id: int
    priority: int
    schedule_delivery_time: str
    validity_period: str
    registered_delivery: int
    data_coding: int
    short_message: bytes
    tlvs: dict[int, bytes]


def parse_submit_sm(body: bytes) -> SubmitSm:
    """The fields of a submit_sm body, octets as they came; MalformedPdu when the body
    is shorter than its fields say or a field is longer than SMPP allows."""
    index = 0

    def c_string(limit: int) -> str:
        nonlocal index
        end = body.find(b"\x00", index, index + limit)
        if end < 0:
            raise MalformedPdu(f"unterminated or over-long field at octet {index}")
        value = body[index:end]
        index = end + 1
        try:
            return value.decode("ascii")
        except UnicodeDecodeError as exc:
            raise MalformedPdu(f"non-ASCII field at octet {index}") from exc

    def octet() -> int:
        nonlocal index
        if index >= len(body):
            raise MalformedPdu("truncated submit_sm")
        value = body[index]
        index += 1
        return value

    service_type = c_string(6)
    source_ton, source_npi = octet(), octet()
    source = c_string(21)
    destination_ton, destination_npi = octet(), octet()
    destination = c_string(21)
    esm_class, protocol_id, priority = octet(), octet(), octet()
    schedule = c_string(17)
    validity = c_string(17)
    registered_delivery = octet()
    octet()  # replace_if_present_flag: nothing is stored to replace
    data_coding = octet()
    octet()  # sm_default_msg_id: no canned messages
    length = octet()
    if index + length > len(body):
        raise MalformedPdu("short_message runs past the end of the PDU")
    short_message = body[index : index + length]
    index += length
    tlvs: dict[int, bytes] = {}
    while index < len(body):
        if index + 4 > len(body):
            raise MalformedPdu("truncated TLV header")
        tag, size = struct.unpack_from("!HH", body, index)
        if index + 4 + size > len(body):
            raise MalformedPdu(f"TLV 0x{tag:04X} runs past the end of the PDU")
        tlvs[tag] = body[index + 4 : index + 4 + size]
        index += 4 + size
    return SubmitSm(
        service_type=service_type,
        source_ton=source_ton,
        source_npi=source_npi,
        source=source,
        destination_ton=destination_ton,
        destination_npi=destination_npi,
        destination=destination,
        esm_class=esm_class,
        protocol_id=protocol_id,
        priority=priority,
        schedule_delivery_time=schedule,
        validity_period=validity,
        registered_delivery=registered_delivery,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=tlvs,
    )


def parse_time(value: str, now: datetime) -> datetime | None:
    """An SMPP time (5.2.23) as an instant: absolute ``YYMMDDhhmmsstnnp`` (nn quarter
    hours from UTC, p '+' or '-') or relative ``YYMMDDhhmmss000R`` from ``now`` (a year
    of 365 days, a month of 30). None when empty; ValueError when malformed."""
    if not value:
        return None
    if len(value) != 16 or not value[:15].isdigit() or value[15] not in "+-R":
        raise ValueError(f"not an SMPP time: {value!r}")
    years, months, days, hours, minutes, seconds = (int(value[i : i + 2]) for i in range(0, 12, 2))
    if value[15] == "R":
        return now + timedelta(
            days=years * 365 + months * 30 + days, hours=hours, minutes=minutes, seconds=seconds
        )
    tenths, quarters = int(value[12]), int(value[13:15])
    if quarters > 48:
        raise ValueError(f"offset of {quarters} quarter hours")
    local = datetime(2000 + years, months, days, hours, minutes, seconds, tenths * 100_000)
    offset = timedelta(minutes=15 * quarters) * (1 if value[15] == "+" else -1)
    return (local - offset).replace(tzinfo=UTC)


# -- text ----------------------------------------------------------------------------


class UnsupportedCoding(ValueError):
    pass


def decode_text(data_coding: int, octets: bytes) -> str:
    """Text of a message in the codings smsgw carries: 0 GSM 03.38 (unpacked septets, the
    default alphabet), 1 IA5/ASCII, 3 Latin-1, 8 UCS-2 (UTF-16, so surrogate pairs
    too). UnsupportedCoding for binary and national codings; ValueError (a
    UnicodeDecodeError) for octets the coding cannot hold."""
    if data_coding == 0:
        return str(_GSM.decode(octets, "strict")[0])
    if data_coding == 1:
        return octets.decode("ascii")
    if data_coding == 3:
        return octets.decode("latin-1")
    if data_coding == 8:
        return octets.decode("utf-16-be")
    raise UnsupportedCoding(f"data_coding 0x{data_coding:02X} is not supported")


@dataclass(frozen=True, slots=True)
class Concatenation:
    reference: int
    total: int
    number: int


def split_udh(short_message: bytes) -> tuple[Concatenation | None, bool, bytes]:
    """(the concatenation IE, whether other IEs are present, the payload after the UDH).
    MalformedPdu when the UDH is longer than the message or its IEs overrun it."""
    if not short_message:
        raise MalformedPdu("UDHI set on an empty message")
    length = short_message[0]
    if 1 + length > len(short_message):
        raise MalformedPdu("UDH longer than the message")
    header, payload = short_message[1 : 1 + length], short_message[1 + length :]
    concatenation: Concatenation | None = None
    others = False
    index = 0
    while index < len(header):
        if index + 2 > len(header):
            raise MalformedPdu("truncated UDH information element")
        iei, size = header[index], header[index + 1]
        data = header[index + 2 : index + 2 + size]
        if len(data) != size:
            raise MalformedPdu("UDH information element overruns the header")
        if iei == 0x00 and size == 3:
            concatenation = Concatenation(data[0], data[1], data[2])
        elif iei == 0x08 and size == 4:
            concatenation = Concatenation((data[0] << 8) | data[1], data[2], data[3])
        else:
            others = True
        index += 2 + size
    return concatenation, others, payload
