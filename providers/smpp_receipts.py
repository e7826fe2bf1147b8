"""Delivery receipts of the SMPP adapter: reading them from deliver_sm, matching their
message ids to the ids of submit_sm_resp, and folding the receipts of a multi-part
message's parts into one."""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from providers import smpp_codec as codec
from providers.base import Receipt

_RECEIPT_KEYS = re.compile(r"\b(id|sub|dlvrd|submit date|done date|stat|err|text):", re.I)
# message_state TLV values (SMPP 3.4 5.3.2.35) for receipts without a stat: field.
_MESSAGE_STATES = {
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
FINAL_FAILURES = frozenset({"UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN"})


def receipt_fields(text: str) -> dict[str, str]:
    """``id:... sub:... dlvrd:... submit date:... done date:... stat:... err:... text:...``
    as a dict with lower-case keys; values may contain spaces (text:) or be missing."""
    matches = list(_RECEIPT_KEYS.finditer(text))
    if not matches:
        return {}
    ends = [match.start() for match in matches[1:]] + [len(text)]
    fields: dict[str, str] = {}
    for match, end in zip(matches, ends, strict=True):
        fields.setdefault(match.group(1).lower(), text[match.end() : end].strip())
    return fields


@dataclass(frozen=True, slots=True)
class ReceiptData:
    message_id: str
    # Where the id came from: the TLV carries it as submit_sm_resp gave it (SMPP 3.4
    # 5.3.2.12); the text's id: field is often in another base.
    id_source: Literal["tlv", "text"]
    stat: str
    err: str | None


def parse_receipt(deliver: codec.DeliverSm) -> ReceiptData | None:
    """The id and final state of a receipt, or None if it names no id or no state."""
    text = deliver.short_message.decode("latin-1")
    fields = receipt_fields(text)
    tlv_id = deliver.tlvs.get(codec.TLV_RECEIPTED_MESSAGE_ID, b"").split(b"\x00", 1)[0]
    id_source: Literal["tlv", "text"]
    if tlv_id:
        message_id, id_source = tlv_id.decode("ascii", "replace"), "tlv"
    elif fields.get("id"):
        message_id, id_source = fields["id"], "text"
    else:
        return None
    stat = fields.get("stat", "").upper()
    state = deliver.tlvs.get(codec.TLV_MESSAGE_STATE)
    if not stat and state:
        stat = _MESSAGE_STATES.get(state[0], "UNKNOWN")
    if not stat:
        return None
    err = fields.get("err") or None
    return ReceiptData(message_id, id_source, stat[:7], err)


def canonical_message_id(raw: str, base: int | None = None) -> str:
    """The form in which an SMSC message id is reported and matched.

    One string cannot tell its own base: "6699" is 0x1A2B written in decimal, or 0x6699.
    No rule over the string alone can map both "1A2B" (hex) and "6699" (decimal) to one
    value without also merging 0x6699 with 6699, so the base of each form is configured
    per SMSC (as Kannel's msg-id-type does): ``base`` is 16 or 10 for an id known to be
    a number written in that base, None for an opaque id. Numbers become lowercase hex
    without leading zeros ("001A2B", "1a2b" and decimal "6699" all give "1a2b"); opaque
    ids and numbers that do not parse are only stripped of blanks and NULs.
    """
    text = raw.strip().strip("\x00").strip()
    if base is None or not text:
        return text
    try:
        return format(int(text, base), "x")
    except ValueError:
        return text


def from_deliver_sm(
    deliver: codec.DeliverSm,
    *,
    provider: str,
    submit_id_base: int | None,
    receipt_id_base: int | None,
    received_at: datetime,
) -> Receipt | None:
    """The Receipt a receipt deliver_sm reports; None while the state is not final
    (ENROUTE, ACCEPTD) or when it names no id or state."""
    data = parse_receipt(deliver)
    if data is None:
        return None
    if data.stat == "DELIVRD":
        status: Literal["delivered", "undelivered"] = "delivered"
        error_code = None
    elif data.stat in FINAL_FAILURES:
        status = "undelivered"
        error_code = data.stat if not (data.err or "").strip("0") else f"{data.stat}:{data.err}"
    else:
        return None
    base = submit_id_base if data.id_source == "tlv" else receipt_id_base
    return Receipt(
        provider=provider,
        provider_message_id=canonical_message_id(data.message_id, base),
        status=status,
        error_code=error_code,
        # The SMSC's done date has no time zone; when we heard is what we know.
        occurred_at=received_at,
    )


@dataclass(slots=True)
class Parts:
    """The parts of one multi-part message, as their receipts come in."""

    first_id: str
    total: int
    ids: list[str] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)
    delivered: set[str] = field(default_factory=set)
    done: bool = False


class MultipartReceipts:
    """The SMSC gives each part its own id and receipt; the message is reported under the
    first part's id, once: undelivered as soon as any part is, delivered when all are,
    and the other parts' receipts are swallowed.

    Only recent messages are remembered (``capacity`` parts); a receipt for an id not
    known here, e.g. after a restart, passes through unchanged, so the first part's
    receipt still reports the message and later parts' ids match nothing."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._by_part: OrderedDict[str, Parts] = OrderedDict()
        self._capacity = capacity

    def add(self, parts: Parts, part_id: str) -> None:
        parts.ids.append(part_id)
        self._by_part[part_id] = parts
        while len(self._by_part) > self._capacity:
            self._by_part.popitem(last=False)

    def forget(self, parts: Parts) -> None:
        for part_id in parts.ids:
            if self._by_part.get(part_id) is parts:
                del self._by_part[part_id]

    def fold(self, receipt: Receipt) -> Receipt | None:
        part_id = receipt.provider_message_id
        parts = self._by_part.get(part_id)
        if parts is None:
            return receipt
        parts.reported.add(part_id)
        if receipt.status == "delivered":
            parts.delivered.add(part_id)
        folded = None
        if not parts.done and (
            receipt.status != "delivered" or len(parts.delivered) == parts.total
        ):
            parts.done = True
            folded = replace(receipt, provider_message_id=parts.first_id)
        if len(parts.reported) == parts.total:
            self.forget(parts)
        return folded
