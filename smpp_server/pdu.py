"""SMPP 3.4 PDUs for the server side, on aiosmpplib's codec.

Everything the server sends (bind responses, submit_sm_resp, deliver_sm, enquire_link,
unbind, generic_nack and their responses) is encoded by aiosmpplib, and binds are
decoded by it. submit_sm bodies are parsed here instead, into raw octets: aiosmpplib's
parser decodes the text of every part on its own (an escape or a surrogate pair that
straddles two parts fails), keeps no UDH, reads a 16-bit concatenation reference with
the total and number in it, raises on data codings, TONs and vendor TLVs outside its
tables, and reads the quarter-hours of an SMPP time's offset as hours: each of those
would refuse or garble a good message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiosmpplib import (
    NPI,
    TON,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    GSM7BitCodec,
    OptionalParam,
    PhoneNumber,
    SmppCommandStatus,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from aiosmpplib.state import MESSAGE_STATE, RECEIPTED_MESSAGE_ID, PduHeader, SmppCommand

HEADER = struct.Struct("!IIII")
# A submit_sm carries at most 254 octets plus a 64 KiB message_payload.
MAX_PDU_LENGTH = 64 * 1024 + 1024

BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
BIND_TRANSCEIVER = 0x00000009
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
ENQUIRE_LINK = 0x00000015
GENERIC_NACK = 0x80000000
DELIVER_SM_RESP = 0x80000005
UNBIND_RESP = 0x80000006
ENQUIRE_LINK_RESP = 0x80000015
RESPONSE_BIT = 0x80000000

ESME_ROK = 0x00
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
BINDS = frozenset({BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER})

TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_MESSAGE_PAYLOAD = 0x0424
ESM_CLASS_UDHI = 0x40
ESM_CLASS_RECEIPT = 0x04

_GSM = GSM7BitCodec()
_BIND_CLASSES: dict[int, Any] = {
    BIND_RECEIVER: (BindReceiver, BindReceiverResp),
    BIND_TRANSMITTER: (BindTransmitter, BindTransmitterResp),
    BIND_TRANSCEIVER: (BindTransceiver, BindTransceiverResp),
}


class MalformedPdu(ValueError):
    """A PDU whose body does not hold what its command says (answered generic_nack)."""


class FramingError(ValueError):
    """A command_length no PDU can have: the stream cannot be read any further."""


@dataclass(frozen=True, slots=True)
class Pdu:
    command_id: int
    status: int
    sequence: int
    body: bytes

    @property
    def raw(self) -> bytes:
        return HEADER.pack(16 + len(self.body), self.command_id, self.status, self.sequence) + (
            self.body
        )


def parse_header(header: bytes) -> tuple[int, int, int, int]:
    length, command_id, status, sequence = HEADER.unpack(header)
    if not HEADER.size <= length <= MAX_PDU_LENGTH:
        raise FramingError(f"command_length {length} out of range")
    return length, command_id, status, sequence


def status_name(status: int) -> str:
    try:
        return str(SmppCommandStatus(status).name)
    except ValueError:
        return f"0x{status:08X}"


# -- binds ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BindRequest:
    command_id: int
    system_id: str
    password: str
    system_type: str
    interface_version: int

    @property
    def kind(self) -> str:
        return {BIND_RECEIVER: "receiver", BIND_TRANSMITTER: "transmitter"}.get(
            self.command_id, "transceiver"
        )

    @property
    def can_receive(self) -> bool:
        return self.command_id in (BIND_RECEIVER, BIND_TRANSCEIVER)

    @property
    def can_transmit(self) -> bool:
        return self.command_id in (BIND_TRANSMITTER, BIND_TRANSCEIVER)


class InvalidBind(ValueError):
    """A bind whose fields break SMPP 3.4's limits; ``status`` is the bind_resp's."""

    def __init__(self, detail: str, status: int) -> None:
        super().__init__(detail)
        self.status = status


def parse_bind(pdu: Pdu) -> BindRequest:
    """MalformedPdu for a body too short for a bind; InvalidBind for credentials longer
    than SMPP allows (no account can have them: ESME_RINVPASWD, as a wrong password) or
    other fields outside its tables (ESME_RBINDFAIL)."""
    fields = pdu.body.split(b"\x00", 3)
    if len(fields) < 4 or len(fields[3]) < 4 or not fields[3].endswith(b"\x00"):
        raise MalformedPdu("truncated bind")
    if len(fields[0]) > 15 or len(fields[1]) > 8:
        raise InvalidBind("system_id or password too long", ESME_RINVPASWD)
    request_class = _BIND_CLASSES[pdu.command_id][0]
    header = PduHeader(
        pdu_length=16 + len(pdu.body),
        smpp_command=SmppCommand(pdu.command_id),
        command_status=SmppCommandStatus.ESME_ROK,
        sequence_num=pdu.sequence,
    )
    try:
        bind = request_class.from_pdu(pdu.raw, header)
    except (ValueError, IndexError, struct.error) as exc:
        # Non-ASCII text, a TON or NPI outside SMPP's tables, an over-long field.
        raise InvalidBind(f"bind: {exc}", ESME_RBINDFAIL) from exc
    return BindRequest(
        command_id=pdu.command_id,
        system_id=bind.system_id,
        password=bind.password,
        system_type=bind.system_type,
        interface_version=bind.interface_version,
    )


def bind_resp(command_id: int, sequence: int, status: int, system_id: str) -> bytes:
    """The response to a bind; SMPP 3.4 sends no body with an error status."""
    message = _BIND_CLASSES[command_id][1](
        sequence_num=sequence,
        command_status=SmppCommandStatus(status),
        system_id=system_id,
        # 0x34: we speak SMPP 3.4 (sc_interface_version TLV).
        sc_interface_version=0x34,
    )
    if status:
        return bytes(message.pack_header(HEADER.size))
    return bytes(message.pdu())


# -- submit_sm -----------------------------------------------------------------------


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


def submit_sm_resp(sequence: int, status: int, message_id: str = "") -> bytes:
    message = SubmitSmResp(
        sequence_num=sequence, command_status=SmppCommandStatus(status), message_id=message_id
    )
    if status:
        return bytes(message.pack_header(HEADER.size))
    return bytes(message.pdu())


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


# -- what the server originates ------------------------------------------------------


def generic_nack(sequence: int, status: int) -> bytes:
    return bytes(GenericNack(sequence_num=sequence, command_status=SmppCommandStatus(status)).pdu())


def enquire_link(sequence: int) -> bytes:
    return bytes(EnquireLink(sequence_num=sequence).pdu())


def enquire_link_resp(sequence: int) -> bytes:
    return bytes(EnquireLinkResp(sequence_num=sequence).pdu())


def unbind(sequence: int) -> bytes:
    return bytes(Unbind(sequence_num=sequence).pdu())


def unbind_resp(sequence: int) -> bytes:
    return bytes(UnbindResp(sequence_num=sequence).pdu())


def response_status(command_id: int, sequence: int, status: int) -> bytes:
    """A body-less response to ``command_id`` (SMPP 3.4 sends none with an error)."""
    return HEADER.pack(HEADER.size, command_id | RESPONSE_BIT, status, sequence)


def address(value: str) -> PhoneNumber:
    """A deliver_sm address: +E.164 as international ISDN digits, digits as an unknown
    number, anything else as an alphanumeric sender."""
    if value.startswith("+") and value[1:].isdigit():
        return PhoneNumber(value[1:], TON.INTERNATIONAL, NPI.ISDN)
    if value.isdigit() or not value:
        return PhoneNumber(value, TON.UNKNOWN, NPI.ISDN if value else NPI.UNKNOWN)
    return PhoneNumber(value[:11], TON.ALPHANUMERIC, NPI.UNKNOWN)


def deliver_sm(
    sequence: int,
    *,
    source: str,
    destination: str,
    esm_class: int,
    data_coding: int,
    short_message: bytes,
    receipted_message_id: str | None = None,
    message_state: int | None = None,
) -> bytes:
    """A deliver_sm carrying ``short_message`` as given (already encoded, UDH included)."""
    params: list[OptionalParam] = []
    if receipted_message_id is not None:
        params.append(OptionalParam(RECEIPTED_MESSAGE_ID, receipted_message_id))
    if message_state is not None:
        params.append(OptionalParam(MESSAGE_STATE, message_state))
    message = DeliverSm(
        sequence_num=sequence,
        # aiosmpplib wants text here; the octets set below are what goes on the wire.
        short_message="-",
        source=address(source),
        destination=address(destination),
        esm_class=esm_class,
        registered_delivery=0,
        encoding={8: "ucs2", 1: "ascii", 3: "latin_1"}.get(data_coding),
        optional_params=params,
    )
    message.set_encoded_message(short_message)
    return bytes(message.pdu())
