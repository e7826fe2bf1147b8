"""Inbound messages in Twilio's incoming-message webhook format, for tenants whose
``inbound_format`` is 'twilio' (an app moved from Twilio keeps its handler): the form
fields Twilio posts, signed with X-Twilio-Signature by the account's auth token, and
the TwiML answer. Each ``<Message>`` of a ``<Response>`` is sent as a reply through the
accept of every message: billed, rate-limited, opt-outs honoured.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers

from core import single_send, submission, twilio
from core.accept import DispatchScheduler
from core.messages import Message
from core.tenants import Tenant
from db import Conn

# A TwiML answer is a few hundred bytes; more is read no further (jobs/callbacks.py).
MAX_TWIML_BYTES = 64 * 1024


class TwimlError(ValueError):
    """An answer that is not TwiML the gateway can act on."""


@dataclass(frozen=True, slots=True)
class Reply:
    body: str
    # None: back to the handset that wrote, from the number it wrote to.
    to: str | None = None
    sender: str | None = None


def _country(number: str) -> str:
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return ""
    return region if region and region != "ZZ" else ""


def incoming_message(payload: Mapping[str, Any], *, account_sid: str) -> dict[str, str]:
    """The form parameters Twilio posts for an incoming SMS, from an inbound message's
    outbox payload (core/inbound.py). Location fields Twilio fills from its number data
    are sent empty, except the countries."""
    sid = twilio.message_sid(uuid.UUID(str(payload["id"])))
    sender, to = str(payload["from"]), str(payload["to"])
    params = {
        "ToCountry": _country(to),
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": str(payload["body"]),
        "FromCountry": _country(sender),
        "To": to,
        "ToZip": "",
        "NumSegments": str(payload.get("parts") or 1),
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": sender,
        "ApiVersion": twilio.API_VERSION,
    }
    return params


def parse_twiml(answer: bytes) -> list[Reply]:
    """The ``<Message>`` verbs of a TwiML ``<Response>`` (text, or a ``<Body>`` child;
    ``to`` and ``from`` attributes honoured). An empty answer, or an empty
    ``<Response/>``, is no reply. Raises TwimlError otherwise."""
    text = answer.strip()
    if not text:
        return []
    if len(text) > MAX_TWIML_BYTES:
        raise TwimlError(f"the answer is over {MAX_TWIML_BYTES} bytes")
    if b"<!DOCTYPE" in text.upper() or b"<!ENTITY" in text.upper():
        # Entities are how XML expands a small answer into a huge one.
        raise TwimlError("a DOCTYPE or an entity is not TwiML")
    try:
        root = ET.fromstring(text)  # noqa: S314 - bounded above, no DTD or entities
    except ET.ParseError as exc:
        raise TwimlError(f"not XML: {exc}") from None
    if root.tag != "Response":
        raise TwimlError(f"the root element is <{root.tag}>, not <Response>")
    replies = []
    for verb in root:
        if verb.tag != "Message":
            continue  # <Redirect> and others: not a message to send
        body_element = verb.find("Body")
        body = body_element.text if body_element is not None else verb.text
        if not body or not body.strip():
            continue
        replies.append(Reply(body=body.strip(), to=verb.get("to"), sender=verb.get("from")))
    return replies


async def accept_reply(
    conn: Conn,
    *,
    tenant: Tenant,
    inbound: Mapping[str, Any],
    reply: Reply,
    scheduler: DispatchScheduler,
) -> Message:
    """Accept one TwiML reply, in the caller's transaction, like a send through the
    Twilio facade: validated, priced, held, rate-limited, refused to a recipient who
    opted out (the DomainError of each refusal is raised)."""
    request = submission.SendRequest(
        to=reply.to or str(inbound["from"]),
        body=reply.body,
        sender=reply.sender or str(inbound["to"]),
    )
    accepted = await single_send.accept_message(
        conn, tenant=tenant, request=request, scheduler=scheduler, facade="twilio"
    )
    assert isinstance(accepted.body, Message)
    return accepted.body
