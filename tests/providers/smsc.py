"""A real SMSC on loopback for the SMPP adapter's tests and benchmark.

asyncio streams, with submit_sm decoded and deliver_sm encoded by smpp34 (a Rust SMPP
codec) and GSM 03.38 decoded from the table below, so nothing here shares code with the
adapter's aiosmpplib-based encoder: each side checks the other. (smpp34's own server
accepts every bind and cannot drop a connection or pick port 0 from Python, which these
tests need.)
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import smpp34
from smpp34 import Tlv

IdForm = Literal["hex", "decimal", "opaque"]

GENERIC_NACK = 0x80000000
BIND_TRANSCEIVER = 0x00000009
SUBMIT_SM = 0x00000004
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015
ESME_ROK = 0x00
ESME_RINVPASWD = 0x0E
ESME_RTHROTTLED = 0x58
TLV_RECEIPTED_MESSAGE_ID = 0x001E

# 3GPP TS 23.038 default alphabet, 0x00-0x7F (0x1B escapes to the extension table).
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}


def gsm_decode(octets: bytes) -> str:
    """Unpacked septets (one per octet, as SMPP carries them) to text."""
    chars: list[str] = []
    escaped = False
    for octet in octets:
        assert octet < 0x80, f"octet 0x{octet:02X} is not a septet"
        if escaped:
            chars.append(GSM_EXTENSION[octet])
            escaped = False
        elif octet == 0x1B:
            escaped = True
        else:
            chars.append(GSM_BASIC[octet])
    assert not escaped, "escape at the end of a part"
    return "".join(chars)


def pdu(command_id: int, sequence: int, status: int = ESME_ROK, body: bytes = b"") -> bytes:
    return struct.pack("!IIII", 16 + len(body), command_id, status, sequence) + body


@dataclass(frozen=True)
class Submit:
    session: int
    source: str
    source_ton: int
    source_npi: int
    destination: str
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes
    status: int
    message_id: str | None


@dataclass(frozen=True)
class Bind:
    system_id: str
    password: str
    system_type: str
    accepted: bool


@dataclass
class _Session:
    number: int
    writer: asyncio.StreamWriter
    outstanding: int = 0
    waiting: dict[int, asyncio.Future[int]] = field(default_factory=dict)
    sequence: int = 0


@dataclass
class Smsc:
    system_id: str = "smsgw"
    password: str = "secret"
    submit_id_form: IdForm = "opaque"
    receipt_id_form: IdForm = "opaque"
    # Put the receipted_message_id TLV in receipts (as submit_sm_resp gave the id).
    receipt_tlv: bool = True
    # Answer every n-th submit_sm ESME_RTHROTTLED (0: never).
    throttle_every: int = 0
    # Destination -> command_status to answer instead of accepting.
    reject: dict[str, int] = field(default_factory=dict)
    # Destinations whose submit_sm is never answered.
    ignore: set[str] = field(default_factory=set)
    # Destination -> receipt stat (DELIVRD when absent); no receipts when None.
    receipt_stat: dict[str, str] | None = field(default_factory=dict)
    receipt_delay: float = 0.005
    response_delay: float = 0.0
    # Close the connection, unanswered, when the n-th submit_sm arrives.
    drop_at_submit: int | None = None

    submits: list[Submit] = field(default_factory=list)
    binds: list[Bind] = field(default_factory=list)
    enquire_links: int = 0
    unbinds: int = 0
    receipt_acks: int = 0
    max_outstanding: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _sessions: list[_Session] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _serving: set[asyncio.Task[None]] = field(default_factory=set)
    _activity: asyncio.Event = field(default_factory=asyncio.Event)
    _received: int = 0
    _next_id: int = 0x1A2B

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for session in self._sessions:
            session.writer.close()
        await asyncio.gather(*self._serving, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # -- what the tests drive ------------------------------------------------------------

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait (5 s at most) until ``condition`` holds after some PDU arrived."""
        async with asyncio.timeout(5):
            while not condition():
                self._activity.clear()
                await self._activity.wait()

    @property
    def live(self) -> _Session:
        return self._sessions[-1]

    def drop(self) -> None:
        self.live.writer.close()

    async def enquire_link(self) -> int:
        """Send enquire_link to the bound ESME; returns the response's command_id."""
        return await self._request(ENQUIRE_LINK, b"")

    async def deliver(self, message: smpp34.DeliverSm) -> int:
        """Send a deliver_sm (built by the test); returns the deliver_sm_resp status."""
        return await self._request(0x00000005, message.encode()[16:])

    async def _request(self, command_id: int, body: bytes) -> int:
        session = self.live
        session.sequence += 1
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        session.waiting[session.sequence] = future
        session.writer.write(pdu(command_id, session.sequence, body=body))
        return await asyncio.wait_for(future, 5)

    # -- the SMSC ------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._serving.add(asyncio.current_task())  # type: ignore[arg-type]
        session = _Session(len(self._sessions) + 1, writer)
        try:
            while True:
                header = await reader.readexactly(16)
                length, command_id, status, sequence = struct.unpack("!IIII", header)
                raw = header + await reader.readexactly(length - 16)
                self._activity.set()
                if command_id == BIND_TRANSCEIVER:
                    self._bind(session, smpp34.decode(raw), sequence)
                elif command_id == SUBMIT_SM:
                    decoded = smpp34.decode(raw)
                    assert isinstance(decoded, smpp34.SubmitSm)
                    if not self._submit(session, decoded, sequence):
                        return
                elif command_id == ENQUIRE_LINK:
                    self.enquire_links += 1
                    writer.write(pdu(ENQUIRE_LINK_RESP, sequence))
                elif command_id == UNBIND:
                    self.unbinds += 1
                    writer.write(pdu(0x80000006, sequence))
                    await writer.drain()
                    return
                elif command_id & 0x80000000:
                    if command_id == DELIVER_SM_RESP:
                        self.receipt_acks += 1
                    future = session.waiting.pop(sequence, None)
                    if future is not None and not future.done():
                        future.set_result(status if command_id == DELIVER_SM_RESP else command_id)
                else:
                    writer.write(pdu(GENERIC_NACK, sequence, 0x03))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _bind(self, session: _Session, decoded: object, sequence: int) -> None:
        assert isinstance(decoded, smpp34.RawPdu)
        system_id, password, system_type, _rest = decoded.body.split(b"\x00", 3)
        accepted = system_id.decode() == self.system_id and password.decode() == self.password
        self.binds.append(
            Bind(system_id.decode(), password.decode(), system_type.decode(), accepted)
        )
        status = ESME_ROK if accepted else ESME_RINVPASWD
        body = b"SMSC\x00" if accepted else b""
        session.writer.write(pdu(0x80000009, sequence, status, body))
        if accepted:
            self._sessions.append(session)

    def _submit(self, session: _Session, submit: smpp34.SubmitSm, sequence: int) -> bool:
        self._received += 1
        if self.drop_at_submit is not None and self._received == self.drop_at_submit:
            session.writer.close()
            return False
        if submit.destination_addr in self.ignore:
            return True
        status = self.reject.get(submit.destination_addr, ESME_ROK)
        if self.throttle_every and self._received % self.throttle_every == 0:
            status = ESME_RTHROTTLED
        message_id: str | None = None
        number = 0
        if status == ESME_ROK:
            self._next_id += 1
            number = self._next_id
            message_id = self._id(number, self.submit_id_form)
        self.submits.append(
            Submit(
                session=session.number,
                source=submit.source_addr,
                source_ton=submit.source_addr_ton,
                source_npi=submit.source_addr_npi,
                destination=submit.destination_addr,
                esm_class=submit.esm_class,
                data_coding=submit.data_coding,
                registered_delivery=submit.registered_delivery,
                short_message=submit.short_message,
                status=status,
                message_id=message_id,
            )
        )
        session.outstanding += 1
        self.max_outstanding = max(self.max_outstanding, session.outstanding)
        body = (message_id or "").encode() + b"\x00"
        self._spawn(self._answer(session, pdu(0x80000004, sequence, status, body)))
        if message_id is not None and self.receipt_stat is not None:
            stat = self.receipt_stat.get(submit.destination_addr, "DELIVRD")
            self._spawn(self._receipt(session, submit, number, stat))
        return True

    def _spawn(self, coroutine: object) -> None:
        assert asyncio.iscoroutine(coroutine)
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, session: _Session, response: bytes) -> None:
        if self.response_delay:
            await asyncio.sleep(self.response_delay)
        else:
            await asyncio.sleep(0)
        session.outstanding -= 1
        if not session.writer.is_closing():
            session.writer.write(response)

    @staticmethod
    def _id(number: int, form: IdForm) -> str:
        if form == "hex":
            return f"00{number:X}"  # upper case with leading zeros, as some SMSCs do
        if form == "decimal":
            return str(number)
        return f"msg-{number}"

    async def _receipt(
        self, session: _Session, submit: smpp34.SubmitSm, number: int, stat: str
    ) -> None:
        await asyncio.sleep(self.receipt_delay)
        now = datetime.now(UTC)
        err = "000" if stat == "DELIVRD" else "001"
        text = (
            f"id:{self._id(number, self.receipt_id_form)} sub:001 dlvrd:"
            f"{'001' if stat == 'DELIVRD' else '000'} submit date:{now:%y%m%d%H%M} "
            f"done date:{now:%y%m%d%H%M%S} stat:{stat} err:{err} text:hello"
        )
        tlvs = (
            [
                Tlv(
                    TLV_RECEIPTED_MESSAGE_ID,
                    self._id(number, self.submit_id_form).encode() + b"\x00",
                )
            ]
            if self.receipt_tlv
            else []
        )
        receipt = smpp34.DeliverSm(
            submit.destination_addr,
            submit.source_addr,
            text.encode(),
            esm_class=0x04,
            tlvs=tlvs,
        )
        with contextlib.suppress(ConnectionError, TimeoutError, RuntimeError, IndexError):
            if session in self._sessions and not session.writer.is_closing():
                session.sequence += 1
                session.writer.write(pdu(0x00000005, session.sequence, body=receipt.encode()[16:]))


def reassemble(submits: list[Submit], *, complete_only: bool = False) -> list[tuple[int, str]]:
    """The texts the handsets would show, with their data_coding: parts with a
    concatenation UDH joined by reference in part order, other submits as they are.
    ``complete_only`` skips long messages with parts missing (a part was refused, and
    the gateway sent the whole message again under a new reference)."""
    texts: list[tuple[int, str]] = []
    groups: dict[tuple[str, int], dict[int, Submit]] = {}
    totals: dict[tuple[str, int], int] = {}
    for submit in submits:
        if submit.status != ESME_ROK:
            continue
        if not submit.esm_class & 0x40:
            texts.append((submit.data_coding, _decode(submit.data_coding, submit.short_message)))
            continue
        udh = submit.short_message
        assert udh[:3] == b"\x05\x00\x03", f"not an 8-bit concatenation UDH: {udh[:6].hex()}"
        key = (submit.destination, udh[3])
        groups.setdefault(key, {})[udh[5]] = submit
        totals[key] = udh[4]
    for key, parts in groups.items():
        if complete_only and sorted(parts) != list(range(1, totals[key] + 1)):
            continue
        assert sorted(parts) == list(range(1, totals[key] + 1)), f"parts missing for {key}"
        codings = {part.data_coding for part in parts.values()}
        assert len(codings) == 1
        coding = codings.pop()
        text = "".join(_decode(coding, parts[n].short_message[6:]) for n in sorted(parts))
        texts.append((coding, text))
    return texts


def _decode(data_coding: int, octets: bytes) -> str:
    if data_coding == 0:
        return gsm_decode(octets)
    assert data_coding == 8, f"unexpected data_coding {data_coding}"
    return octets.decode("utf-16-be")
