"""Tenant API: the tenant's own balance."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency, Provide

from app.auth import provide_tenant, tenant_guard
from app.schemas import AccountBalance
from core import tenants
from core.tenants import Tenant
from db import Conn


class AccountController(Controller):
    path = "/v1"
    tags = ["account"]
    guards = [tenant_guard]
    dependencies = {"tenant": Provide(provide_tenant, sync_to_thread=False)}

    @get("/balance")
    async def balance(
        self, conn: NamedDependency[Conn], tenant: NamedDependency[Tenant]
    ) -> AccountBalance:
        balance, currency = await tenants.get_balance(conn, tenant_id=tenant.id)
        return AccountBalance(
            available=balance.available,
            held=balance.held,
            captured=balance.captured,
            currency=currency,
        )
