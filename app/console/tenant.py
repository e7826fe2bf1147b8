"""The tenant console's messages: the overview (balance, spend and volume by day), the
message list, a message's page with its status history, and a test send whose status
the page follows without reloading (htmx polls a fragment until the status is final)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from app.console import charts
from app.console.web import PREFIX, current, form_fields, page, tenant_guard
from app.deps import provide_reporting_conn, services
from core import messages, reports, single_send, submission, tenants
from core.errors import FieldError, InvalidRequest
from core.messages import Message
from core.tenants import Tenant
from db import Conn

# Statuses after which nothing changes: the page stops polling.
FINAL = frozenset({"delivered", "undelivered", "failed", "expired", "canceled"})


async def provide_console_tenant(
    request: Request[Any, Any, Any], conn: NamedDependency[Conn]
) -> Tenant:
    session = current(request)
    assert session.tenant_id is not None
    tenant, _ = await tenants.get_tenant(conn, tenant_id=session.tenant_id)
    return tenant


TENANT_DEPENDENCIES = {
    "tenant": Provide(provide_console_tenant),
    "reporting": Provide(provide_reporting_conn),
}


def _day(name: str, raw: str | None, *, end: bool) -> datetime | None:
    """A date input as the list's bound: from its first instant, or to its last."""
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(
            "The filters are not valid.", [FieldError(name, "must be a date (YYYY-MM-DD)")]
        ) from None
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start + timedelta(days=1) if end else start


class TenantConsole(Controller):
    path = PREFIX
    guards = [tenant_guard]
    include_in_schema = False
    dependencies = TENANT_DEPENDENCIES

    @get("/")
    async def overview(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
    ) -> Template:
        """The balance at once; the charts follow (htmx loads the usage fragment), so the
        page does not wait for the reports."""
        balance, currency = await tenants.get_balance(conn, tenant_id=tenant.id)
        return page(request, "overview.html", tenant=tenant, balance=balance, currency=currency)

    @get("/usage")
    async def usage(
        self,
        request: Request[Any, Any, Any],
        reporting: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        fragment: FromQuery[bool] = False,
    ) -> Template:
        """Spend and volume by day over 30 days, and by country, from the reporting pool:
        the overview's charts (``fragment``), or a page of their own."""
        context = await _usage(reporting, tenant)
        return page(request, "_usage.html" if fragment else "usage.html", **context)

    @get("/messages")
    async def message_list(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        to: FromQuery[str | None] = None,
        status: FromQuery[str | None] = None,
        day_from: FromQuery[str | None] = None,
        day_to: FromQuery[str | None] = None,
        cursor: FromQuery[str | None] = None,
    ) -> Template:
        """As `GET /v1/messages`: newest first, a keyset page at a time."""
        found = await messages.list_messages(
            conn,
            tenant=tenant,
            to=to or None,
            status=status or None,
            created_after=_day("day_from", day_from, end=False),
            created_before=_day("day_to", day_to, end=True),
            cursor=cursor or None,
        )
        filters = {
            "to": to or "",
            "status": status or "",
            "day_from": day_from or "",
            "day_to": day_to or "",
        }
        return page(
            request,
            "messages.html",
            found=found,
            filters=filters,
            statuses=messages.STATUSES,
        )

    @get("/messages/{message_id:str}")
    async def message(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        message_id: FromPath[str],
    ) -> Template:
        """A message of this tenant only: another's id is 404, as in the API."""
        found, history = await _message(conn, tenant, message_id)
        return page(request, "message.html", message=found, history=history, final=FINAL)

    @get("/messages/{message_id:str}/status")
    async def message_status(
        self,
        request: Request[Any, Any, Any],
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        message_id: FromPath[str],
    ) -> Template:
        """The status part of the message's page, polled by htmx until it is final."""
        found, history = await _message(conn, tenant, message_id)
        return page(request, "message_status.html", message=found, history=history, final=FINAL)

    @get("/send")
    async def send_form(self, request: Request[Any, Any, Any]) -> Template:
        return page(request, "send.html", fields={})

    @post("/send")
    async def send(
        self,
        request: Request[Any, Any, Any],
        state: State,
        tenant: NamedDependency[Tenant],
    ) -> Redirect:
        """A test message through the accept of `POST /v1/messages`: priced, held and
        queued like any other; its page then shows its status as it changes."""
        fields = await form_fields(request)
        svc = services(state)
        data = submission.SendRequest(
            to=fields.get("to", "").strip(),
            body=fields.get("body", ""),
            sender=fields.get("from", "").strip() or None,
        )
        submission.check_destinations(data, svc.destinations)
        result = await single_send.accept_single(
            svc.pool, svc.sends, tenant=tenant, request=data, scheduler=svc.scheduler
        )
        sent = result.body
        assert isinstance(sent, Message)
        return Redirect(f"{PREFIX}/messages/{sent.id}", status_code=303)


async def _message(
    conn: Conn, tenant: Tenant, raw_id: str
) -> tuple[Message, list[messages.StatusChange]]:
    message_id = messages.parse_message_id(raw_id)
    found = await messages.get_message(conn, tenant=tenant, message_id=message_id)
    history = await messages.status_history(conn, tenant=tenant, message_id=message_id)
    return found, history


async def _usage(reporting: Conn, tenant: Tenant) -> dict[str, Any]:
    by_day, by_country = await reports.tenant_usage_by_day_and_country(
        reporting, tenant_id=tenant.id, currency=tenant.currency, from_=None, to=None
    )
    spent = {(r.key or "")[:10]: r.spent for r in by_day.rows}
    sent = {(r.key or "")[:10]: r.messages for r in by_day.rows}
    return {
        "currency": tenant.currency,
        "rows": by_day.rows,
        "countries": by_country.rows,
        "spend": charts.bars(charts.every_day(by_day.from_, by_day.to, spent)),
        "volume": charts.bars(charts.every_day(by_day.from_, by_day.to, sent)),
    }
