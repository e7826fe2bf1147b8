"""SMPP 3.4 PDUs for the server side, on aiosmpplib's codec: framing, binds, and the PDUs
the server sends.

Everything the server sends (bind responses, submit_sm_resp, deliver_sm, enquire_link,
unbind, generic_nack and their responses) is encoded by aiosmpplib, and binds are
decoded by it. submit_sm bodies are parsed in submit_sm.py instead, into raw octets
(why: its docstring).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
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

ESM_CLASS_RECEIPT = 0x04

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


# -- what the server sends -----------------------------------------------------------


def submit_sm_resp(sequence: int, status: int, message_id: str = "") -> bytes:
    message = SubmitSmResp(
        sequence_num=sequence, command_status=SmppCommandStatus(status), message_id=message_id
    )
    if status:
        return bytes(message.pack_header(HEADER.size))
    return bytes(message.pdu())


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
