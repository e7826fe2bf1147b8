"""Admin API: suspending and resuming a tenant (core/account_suspension.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from app.auth import admin_guard
from app.body import StrictBody
from app.controllers.admin import parse_id, tenant_view
from app.deps import services
from app.schemas import TenantView
from core import changes, exposure
from core.account_suspension import MAX_REASON
from core.audit import Actor
from db import Conn


class SuspensionRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=MAX_REASON,
            description="Why: shown to the operator's colleagues and in the tenant's console",
        ),
    ]


class TenantSuspensionController(Controller):
    path = "/v1/admin/tenants/{tenant_id:str}/suspension"
    tags = ["admin"]
    guards = [admin_guard]

    @put("", dto=StrictBody[SuspensionRequest], return_dto=None)
    async def suspend(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
        data: JSONBody[SuspensionRequest],
    ) -> TenantView:
        """Suspend the tenant: from now on every door refuses its messages (403
        `tenant_suspended`; Twilio 20005; SMPP ESME_RSUBMITFAIL, binds refused and
        closed), and its queued messages wait. Again on a suspended tenant: changes the
        reason only. Reads, reports and its console still work."""
        async with conn.transaction():
            done = await changes.suspend_tenant(
                conn, actor, tenant_id=parse_id(tenant_id, "tenant"), reason=data.reason
            )
            limits = await exposure.get_limits(conn, tenant_id=done.tenant.id)
        return tenant_view(done.tenant, done.balance, limits)

    @delete("", status_code=200)
    async def resume(
        self,
        state: State,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
    ) -> TenantView:
        """Resume a suspended tenant: sends are accepted again and the messages the
        suspension held back are due now. 404 when it is not suspended."""
        async with conn.transaction():
            done = await changes.resume_tenant(
                conn,
                actor,
                tenant_id=parse_id(tenant_id, "tenant"),
                task=services(state).scheduler.task,
            )
            limits = await exposure.get_limits(conn, tenant_id=done.tenant.id)
        return tenant_view(done.tenant, done.balance, limits)
