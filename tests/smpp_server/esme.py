"""A real ESME for the SMPP server's tests, on smpplib: a synchronous SMPP client with
its own PDU codec and GSM 03.38 table, sharing no code with the server (aiosmpplib).
Its calls block, so tests run them in a thread (``asyncio.to_thread``) while the
listener runs on the test's event loop.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

ESME_ROK = 0x00
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RALYBND = 0x05
ESME_RSYSERR = 0x08
ESME_RINVSRCADR = 0x0A
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVMSGLEN = 0x01
ESME_RSUBMITFAIL = 0x45
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64
GENERIC_NACK = 0x80000000


@dataclass(frozen=True)
class Deliver:
    """A deliver_sm as the ESME read it."""

    esm_class: int
    source: str
    destination: str
    data_coding: int
    short_message: bytes
    receipted_message_id: str | None
    message_state: int | None

    @property
    def is_receipt(self) -> bool:
        return self.esm_class & 0x3C == 0x04

    def receipt_fields(self) -> dict[str, str]:
        """The id:, stat:, err:... fields of a receipt's text."""
        text = self.short_message.decode("ascii")
        head, _, body = text.partition(" text:")
        fields = dict(item.split(":", 1) for item in head.replace(" date:", "_date:").split(" "))
        fields["text"] = body
        return fields


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class Esme:
    port: int
    system_id: str
    password: str
    bind_as: str = "transceiver"
    # The source_addr of a submit that names none: a number its tenant owns.
    source: str = ""
    # What to answer each deliver_sm with (ESME_ROK unless the test says otherwise).
    answer: Callable[[Deliver], int] = field(default=lambda d: ESME_ROK)
    received: list[Deliver] = field(default_factory=list)
    errors: list[tuple[str, int]] = field(default_factory=list)
    unbound_by_smsc: bool = False
    _client: Any = None
    _answers: dict[int, tuple[int, str]] = field(default_factory=dict)

    # -- binding ------------------------------------------------------------------------

    def connect(self) -> None:
        self._client = smpplib.client.Client(
            "127.0.0.1", self.port, timeout=10, allow_unknown_opt_params=True
        )
        self._client.set_message_sent_handler(self._sent)
        self._client.set_message_received_handler(self._deliver)
        self._client.set_error_pdu_handler(self._error)
        self._client.connect()
        # As SMPP clients do: a PDU goes out when written, not when Nagle lets it.
        self._client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def bind(self) -> None:
        """Connect and bind; smpplib.exceptions.PDUError (status in args[1]) if refused."""
        if self._client is None:
            self.connect()
        getattr(self._client, f"bind_{self.bind_as}")(
            system_id=self.system_id, password=self.password
        )

    def bind_status(self) -> int:
        """Bind, and say how it went: the bind_resp's command_status."""
        try:
            self.bind()
        except smpplib.exceptions.PDUError as exc:
            return int(exc.args[1])
        return ESME_ROK

    def unbind(self) -> None:
        self._client.unbind()
        self.close()

    def drop(self) -> None:
        """Close the TCP connection with no unbind, as a crash or a cut cable would."""
        self._client._socket.shutdown(socket.SHUT_RDWR)
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client = None

    def closed_by_peer(self) -> bool:
        """True when the server has closed the connection (reading finds its end)."""
        try:
            self._client.read_once()
        except smpplib.exceptions.ConnectionError:
            return True
        return False

    # -- submitting ---------------------------------------------------------------------

    def submit_many(
        self, messages: Iterable[dict[str, Any]], *, window: int
    ) -> list[tuple[int, str]]:
        """submit_sm each message, keeping up to ``window`` unanswered; returns
        (command_status, message_id) per message, in order. deliver_sm that arrive
        meanwhile are answered and kept in ``received``."""
        order: list[int] = []
        pending: set[int] = set()
        for message in messages:
            while len(pending) >= window:
                self._read_into(pending)
            pdu = self._client.send_message(**_submit_fields(message, self.source))
            order.append(pdu.sequence)
            pending.add(pdu.sequence)
        while pending:
            self._read_into(pending)
        return [self._answers.pop(sequence) for sequence in order]

    def submit(self, **message: Any) -> tuple[int, str]:
        return self.submit_many([message], window=1)[0]

    def send_raw(self, command_id: int, body: bytes, sequence: int = 4242) -> None:
        """Write a PDU byte for byte, whatever it holds."""
        header = struct.pack("!IIII", 16 + len(body), command_id, 0, sequence)
        self._client._socket.sendall(header + body)

    def send_command(self, command: str, sequence: int, **fields: Any) -> None:
        """Encode ``command`` with smpplib and write it whatever the bind's state."""
        pdu = smpplib.smpp.make_pdu(command, client=self._client, **fields)
        pdu.sequence = sequence
        self._client._socket.sendall(pdu.generate())

    def read_answer(self, sequence: int = 4242) -> tuple[str, int]:
        """Read PDUs until the one answering ``sequence``: (command name, status)."""
        while True:
            pdu = self._client.read_pdu()
            if pdu.sequence == sequence:
                return pdu.command, int(pdu.status)

    def _read_into(self, pending: set[int]) -> None:
        self._client.read_once()
        pending.difference_update(self._answers)

    # -- receiving ----------------------------------------------------------------------

    def read_until(self, done: Callable[[], bool], seconds: float = 60.0) -> None:
        """Read (answering deliver_sm) until ``done()``; AssertionError after ``seconds``
        (a deadline for waiting, not a measurement)."""
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, f"not done after {seconds} s"
            readable, _, _ = select.select([self._client._socket], [], [], 0.2)
            if readable:
                self._dispatch(self._client.read_pdu())

    def receipts(self) -> Iterator[Deliver]:
        return (d for d in self.received if d.is_receipt)

    # -- smpplib callbacks --------------------------------------------------------------

    def _dispatch(self, pdu: Any) -> None:
        if pdu.is_error():
            self._error(pdu)
        if pdu.command == "deliver_sm":
            self._client._message_received(pdu)
        elif pdu.command == "submit_sm_resp":
            self._sent(pdu)
        elif pdu.command == "enquire_link":
            self._client._enquire_link_received(pdu)
        elif pdu.command == "unbind":
            answer = smpplib.smpp.make_pdu("unbind_resp", client=self._client)
            answer.sequence = pdu.sequence
            self._client.send_pdu(answer)
            self.unbound_by_smsc = True

    def _sent(self, pdu: Any) -> None:
        self._answers[pdu.sequence] = (int(pdu.status), _text(getattr(pdu, "message_id", "")))

    def _deliver(self, pdu: Any) -> int:
        deliver = Deliver(
            esm_class=int(pdu.esm_class),
            source=_text(pdu.source_addr),
            destination=_text(pdu.destination_addr),
            data_coding=int(pdu.data_coding),
            short_message=bytes(pdu.short_message or b""),
            receipted_message_id=_text(pdu.receipted_message_id).rstrip("\x00") or None,
            message_state=getattr(pdu, "message_state", None),
        )
        status = self.answer(deliver)
        if status == ESME_ROK:
            self.received.append(deliver)
        return status

    def _error(self, pdu: Any) -> None:
        # Refusals are what these tests look at: keep them rather than raise.
        self.errors.append((pdu.command, int(pdu.status)))


def _submit_fields(message: dict[str, Any], source: str) -> dict[str, Any]:
    # A sender must be the tenant's own: by default the number its tenant owns
    # (tests/smpp_server/conftest.py: smpp_tenant), international; a sender ID otherwise.
    source = message.get("source_addr", source)
    alphanumeric = not source.isdigit()
    fields = {
        "source_addr_ton": 5 if alphanumeric else 1,
        "source_addr_npi": 0 if alphanumeric else 1,
        "source_addr": source,
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "registered_delivery": 0,
        "data_coding": 0,
        **message,
    }
    text = fields.pop("text", None)
    if text is not None:
        fields["short_message"] = smpplib.gsm.gsm_encode(text)
    return fields


def long_message_parts(text: str, *, ucs2: bool = False) -> list[dict[str, Any]]:
    """A long text split by smpplib into concatenated parts with an 8-bit UDH."""
    coding = smpplib.consts.SMPP_ENCODING_ISO10646 if ucs2 else smpplib.consts.SMPP_ENCODING_DEFAULT
    parts, coding, esm_class = smpplib.gsm.make_parts(text, encoding=coding)
    return [{"short_message": p, "data_coding": coding, "esm_class": esm_class} for p in parts]
