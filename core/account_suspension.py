"""Suspending a tenant: the operator stops its traffic without deleting anything.

While suspended, no message of the tenant is accepted, whichever door it comes through:
the accept statements refuse it ('tenant_suspended', read with the geo permissions once
per (tenant, country) of a call: smsgw_geo_refusal_v2), so the REST API (single and
batch), the Twilio facade, the SMPP listener and the consoles refuse alike, a cached API
key included. The SMPP listener also refuses new binds and closes the tenant's binds at
its next upkeep (smpp_server/server.py). Its queued and scheduled messages wait: pushed
to their expiry, so dispatch does not claim them; resuming makes them due again, and
those the suspension outlived expire with their holds released. The tenant can still
sign in to its console and read its messages, reports and balance.

Suspending first locks the tenant's balance row, which every accept holds until it
commits: accepts in flight finish first, and the hold-back that follows sees their
messages. An accept whose statement began before the suspension committed can still
commit after it (its snapshot read the tenant active), as with a key revoked mid-request.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import structlog

from core import alerts, tenants
from core.errors import FieldError, InvalidRequest, NotFound
from db import Conn
from db import account_suspension as suspension_db
from db import dispatch as dispatch_db

log = structlog.get_logger("smsgw.account_suspension")

MAX_REASON = 500


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """A suspension or a resume: the tenant before and after, its balance, and how many
    queued messages it held back or released."""

    before: tenants.Tenant
    tenant: tenants.Tenant
    balance: tenants.Balance
    messages: int


def _reason(reason: str) -> str:
    text = reason.strip()
    if not text or len(text) > MAX_REASON or "\x00" in text:
        raise InvalidRequest(
            "The suspension is not valid.",
            [FieldError("reason", f"must be 1 to {MAX_REASON} characters, not blank")],
        )
    return text


async def suspend(conn: Conn, *, tenant_id: uuid.UUID, reason: str) -> Change:
    """Suspend the tenant (or change the reason of its suspension); ``messages``: how
    many now wait. Runs in the caller's transaction."""
    text = _reason(reason)
    # The tenant's row first, then its balance: the order of every settings change, so
    # two of them cannot wait on each other.
    before, _ = await tenants.get_tenant(conn, tenant_id=tenant_id, lock=True)
    await suspension_db.lock_balance(conn, tenant_id=tenant_id)
    since = await suspension_db.suspend(conn, tenant_id=tenant_id, reason=text)
    held = await suspension_db.hold_back(conn, tenant_id=tenant_id)
    if before.suspended_at is None:
        await alerts.tell(
            conn,
            tenant_id=tenant_id,
            event=alerts.ACCOUNT_SUSPENDED,
            data={"reason": text, "suspended_at": since.isoformat() if since else None},
        )
        log.info("tenant.suspended", tenant_id=str(tenant_id), held=held)
    tenant, balance = await tenants.get_tenant(conn, tenant_id=tenant_id)
    return Change(before=before, tenant=tenant, balance=balance, messages=held)


async def resume(conn: Conn, *, tenant_id: uuid.UUID, task: str) -> Change:
    """Lift the tenant's suspension: sends are accepted again and the messages it held
    back are due now (``messages``: how many). NotFound when the tenant is unknown or not
    suspended."""
    before, _ = await tenants.get_tenant(conn, tenant_id=tenant_id, lock=True)
    if not await suspension_db.resume(conn, tenant_id=tenant_id):
        raise NotFound("This tenant is not suspended.")
    released = await suspension_db.release_held(conn, tenant_id=tenant_id)
    if released:
        await dispatch_db.requeue_tenants(
            conn,
            due_again={tenant_id: datetime.min.replace(tzinfo=UTC)},
            task=task,
            back_of_line=False,
        )
    await alerts.tell(conn, tenant_id=tenant_id, event=alerts.ACCOUNT_RESUMED, data={})
    log.info("tenant.resumed", tenant_id=str(tenant_id), released=released)
    tenant, balance = await tenants.get_tenant(conn, tenant_id=tenant_id)
    return Change(before=before, tenant=tenant, balance=balance, messages=released)
