"""Opt-out keywords in inbound messages, and what they do.

The whole message, trimmed and case-insensitive, is the keyword ("stop" is, "please
stop" is not):

- STOP, UNSUBSCRIBE, CANCEL, END, QUIT: the sender goes on the tenant's suppression list
  for the number it wrote to; STOPALL: for every number of the tenant.
- START, YES, UNSTOP: the sender comes off it for that number, and off an all-numbers
  entry (a START is an explicit wish to hear from the tenant again).
- HELP: the tenant's ``help_reply`` goes back from the number written to, accepted like
  any message but free (held and settled at 0), and sent even after a STOP.

The message itself still reaches the tenant's webhook, with its ``keyword``.
"""

from __future__ import annotations

import structlog

from core import accept, submission
from core.errors import (
    InvalidRequest,
    NoSenderForDestination,
    SenderNotAllowed,
    SenderNotAllowedForDestination,
)
from core.tenants import Tenant
from db import Conn
from db import suppressions as suppressions_db

log = structlog.get_logger("smsgw.inbound")

OPT_OUT = frozenset({"STOP", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_OUT_ALL = frozenset({"STOPALL"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
HELP = frozenset({"HELP"})
HELP_REFERENCE = "auto-reply:help"


def classify(body: str) -> str | None:
    word = body.strip().upper()
    if word in OPT_OUT:
        return "opt_out"
    if word in OPT_OUT_ALL:
        return "opt_out_all"
    if word in OPT_IN:
        return "opt_in"
    if word in HELP:
        return "help"
    return None


async def apply(
    conn: Conn,
    *,
    tenant: Tenant,
    keyword: str,
    sender: str,
    number: str,
    scheduler: accept.DispatchScheduler,
) -> None:
    """Inside the transaction that stores the message ``sender`` wrote to ``number``."""
    if keyword in ("opt_out", "opt_out_all"):
        await suppressions_db.add(
            conn,
            tenant_id=tenant.id,
            recipient=sender,
            number=number if keyword == "opt_out" else suppressions_db.ALL_NUMBERS,
            source="keyword",
        )
        log.info("suppression.opted_out", tenant_id=str(tenant.id), all=keyword == "opt_out_all")
    elif keyword == "opt_in":
        await suppressions_db.opt_in(conn, tenant_id=tenant.id, recipient=sender, number=number)
        log.info("suppression.opted_in", tenant_id=str(tenant.id))
    elif keyword == "help" and tenant.help_reply:
        try:
            reply = await accept.accept_reply(
                conn,
                tenant=tenant,
                request=submission.SendRequest(
                    to=sender,
                    body=tenant.help_reply,
                    sender=number,
                    client_reference=HELP_REFERENCE,
                ),
                scheduler=scheduler,
            )
        except (
            InvalidRequest,
            SenderNotAllowed,
            SenderNotAllowedForDestination,
            NoSenderForDestination,
        ) as exc:
            # A sender we cannot answer (not a valid number, or a country that takes no
            # answer from this number): the message still counts.
            log.warning("inbound.help_unanswerable", tenant_id=str(tenant.id), error=exc.detail)
        else:
            log.info("inbound.help_answered", tenant_id=str(tenant.id), message_id=str(reply.id))
