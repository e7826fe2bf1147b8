"""Webhook deliveries as a tenant sees them (``GET /v1/webhooks/deliveries``): each
status callback and inbound message the gateway owes it, with its last attempt (status
code or error, latency) and its next retry. Never the signing secret, never another
tenant's rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

import msgspec

from core import cursors, submission
from core.errors import FieldError, InvalidRequest
from core.tenants import Tenant
from core.webhook_policy import DestinationPolicy
from db import Conn, Row
from db import callbacks as callbacks_db

MAX_PAGE = 500
DEFAULT_PAGE = 50

DeliveryState = Literal["pending", "retrying", "delivered", "failed"]


class WebhookDelivery(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    # message.<status> for a status callback, message.received for an inbound message.
    event: str
    format: Literal["json", "twilio"]
    message_id: uuid.UUID
    url: str
    state: DeliveryState
    attempts: int
    last_attempt_at: datetime | None
    status_code: int | None
    error: str | None
    latency_ms: int | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    failed_at: datetime | None


class DeliveryPage(msgspec.Struct, frozen=True, kw_only=True):
    deliveries: list[WebhookDelivery]
    next_cursor: str | None


def _event(row: Row) -> str:
    if row["kind"] in ("inbound", "twilio_inbound"):
        return "message.received"
    return f"message.{row['status']}"


def _state(row: Row) -> DeliveryState:
    if row["delivered_at"] is not None:
        return "delivered"
    if row["abandoned_at"] is not None:
        return "failed"
    tried = row["last_status_code"] is not None or row["last_error"] is not None
    return "retrying" if tried else "pending"


def delivery_from_row(row: Row) -> WebhookDelivery:
    return WebhookDelivery(
        id=row["id"],
        event=_event(row),
        format="twilio" if row["kind"].startswith("twilio") else "json",
        message_id=row["message_id"],
        url=row["url"],
        state=_state(row),
        attempts=row["attempts"],
        last_attempt_at=row["last_attempt_at"],
        status_code=row["last_status_code"],
        error=row["last_error"],
        latency_ms=row["last_latency_ms"],
        # NULL once delivered or failed; while a sender holds the row, the end of its
        # lease (the attempt after it, should this one fail without an answer).
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        failed_at=row["abandoned_at"],
    )


async def list_deliveries(
    conn: Conn, *, tenant: Tenant, limit: int | None = None, cursor: str | None = None
) -> DeliveryPage:
    """The tenant's deliveries, newest first."""
    size = cursors.size(limit, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    before = cursors.decode(cursor, tuple[datetime, uuid.UUID]) if cursor else None
    rows = await callbacks_db.list_for_tenant(
        conn,
        tenant_id=tenant.id,
        before_created_at=before[0] if before else None,
        before_id=before[1] if before else None,
        limit=size + 1,
    )
    page, next_cursor = cursors.page(
        rows, size, item=delivery_from_row, key=lambda d: (d.created_at, d.id)
    )
    return DeliveryPage(deliveries=page, next_cursor=next_cursor)


async def send_test_event(
    conn: Conn, *, tenant: Tenant, url: str, destinations: DestinationPolicy
) -> uuid.UUID:
    """A status callback of a made-up message (status ``test``) to ``url``, signed with
    the tenant's secret and delivered (and retried) like any other, so the tenant sees
    its endpoint's answer among the deliveries. The id of the made-up message."""
    errors: list[FieldError] = []
    submission.check_url(url, errors, "url")
    if errors:
        raise InvalidRequest("The URL is not valid.", errors)
    submission.check_destination(url, destinations, "url")
    message_id = uuid.uuid4()
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    payload = {"id": str(message_id), "status": "test", "error_code": None, "timestamp": now}
    await callbacks_db.enqueue(
        conn, tenant_id=tenant.id, message_id=message_id, url=url, payload=payload, kind="status"
    )
    return message_id
