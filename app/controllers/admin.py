"""Admin API: tenants, credits, API keys and SMPP credentials
(``Authorization: Bearer $SMSGW_ADMIN_TOKEN``)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from app.auth import admin_guard
from app.body import StrictBody, T, decode
from app.deps import services
from app.openapi import problems
from app.schemas import (
    ApiKeyCreated,
    BalanceView,
    CreateTenant,
    CreditRequest,
    QuietHours,
    SmppCredentialsIssued,
    SmppCredentialsRequest,
    SmppCredentialsUpdate,
    SmppCredentialsView,
    TenantCreated,
    TenantView,
    UpdateTenant,
)
from core import audit, changes, exposure, quiet_hours, smpp_accounts, tenants
from core.audit import Actor
from core.errors import NotFound
from db import Conn
from jobs.scheduler import follow_tier


class _OptionalBody(StrictBody[T]):
    """A strict body that may be left out: no body reads as ``{}``."""

    def decode_bytes(self, value: bytes) -> Any:
        return decode(value.strip() or b"{}", self.model_type)


def parse_id(raw: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"No {what} has this id.") from None


def tenant_view(
    tenant: tenants.Tenant, balance: tenants.Balance, limits: exposure.Limits
) -> TenantView:
    return TenantView(
        id=tenant.id,
        name=tenant.name,
        tier=tenant.tier,
        rate_limit_mps=tenant.rate_limit_mps,
        price_per_segment=tenant.price_per_segment,
        currency=tenant.currency,
        created_at=tenant.created_at,
        available=balance.available,
        held=balance.held,
        captured=balance.captured,
        inbound_url=tenant.inbound_url,
        help_reply=tenant.help_reply,
        inbound_format=tenant.inbound_format,
        rate_card=tenant.rate_card,
        sender_policy="any" if tenant.sender_policy == "any" else "own",
        smart_encoding=tenant.smart_encoding,
        quiet_hours=(
            None
            if tenant.quiet_hours is None
            else QuietHours(
                start=tenant.quiet_hours[0].strftime("%H:%M"),
                end=tenant.quiet_hours[1].strftime("%H:%M"),
            )
        ),
        daily_spend_cap=limits.daily_spend_cap,
        monthly_spend_cap=limits.monthly_spend_cap,
        day_spent=limits.day_spent,
        month_spent=limits.month_spent,
        low_balance_threshold=limits.low_balance_threshold,
        alerts_url=limits.alerts_url,
        spend_alert_percents=limits.spend_alert_percents,
        suspended_at=tenant.suspended_at,
        suspension_reason=tenant.suspension_reason,
    )


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]
    guards = [admin_guard]

    @post("/tenants", dto=StrictBody[CreateTenant], return_dto=None, status_code=201)
    async def create_tenant(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        data: JSONBody[CreateTenant],
    ) -> TenantCreated:
        async with conn.transaction():
            tenant, key = await changes.create_tenant(
                conn, actor, name=data.name, tier=data.tier, rate_limit_mps=data.rate_limit_mps
            )
        return TenantCreated(
            id=tenant.id,
            name=tenant.name,
            tier=tenant.tier,
            rate_limit_mps=tenant.rate_limit_mps,
            api_key=key.api_key,
            api_key_id=key.id,
            webhook_secret=tenant.webhook_secret,
            price_per_segment=tenant.price_per_segment,
            currency=tenant.currency,
            created_at=tenant.created_at,
        )

    @get("/tenants/{tenant_id:str}")
    async def get_tenant(self, conn: NamedDependency[Conn], tenant_id: FromPath[str]) -> TenantView:
        tenant, balance = await tenants.get_tenant(conn, tenant_id=parse_id(tenant_id, "tenant"))
        return tenant_view(tenant, balance, await exposure.get_limits(conn, tenant_id=tenant.id))

    @patch("/tenants/{tenant_id:str}", dto=StrictBody[UpdateTenant], return_dto=None)
    async def update_tenant(
        self,
        state: State,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
        data: JSONBody[UpdateTenant],
    ) -> TenantView:
        """Change tier, rate limit, price, inbound webhook (`inbound_url`, `inbound_format`),
        HELP answer (`help_reply`) or sender policy (`sender_policy`: `any` lets the
        tenant send from any sender); a tier change moves the tenant's waiting dispatch
        job to the new tier's queue at once. Exposure limits: `daily_spend_cap` and
        `monthly_spend_cap` (micro-units, null: none), `low_balance_threshold`,
        `alerts_url` and `spend_alert_percents` (issue 25)."""
        async with conn.transaction():
            tenant, balance = await changes.update_tenant(
                conn,
                actor,
                tenant_id=parse_id(tenant_id, "tenant"),
                tier=None if data.tier is msgspec.UNSET else data.tier,
                rate_limit_mps=data.rate_limit_mps,
                price_per_segment=(
                    None if data.price_per_segment is msgspec.UNSET else data.price_per_segment
                ),
                inbound_url=data.inbound_url,
                help_reply=data.help_reply,
                inbound_format=(
                    None if data.inbound_format is msgspec.UNSET else data.inbound_format
                ),
                destinations=services(state).destinations,
                rate_card=data.rate_card,
                sender_policy=None if data.sender_policy is msgspec.UNSET else data.sender_policy,
                smart_encoding=(
                    None if data.smart_encoding is msgspec.UNSET else data.smart_encoding
                ),
                quiet_hours=(
                    data.quiet_hours
                    if data.quiet_hours is None or data.quiet_hours is msgspec.UNSET
                    else (
                        quiet_hours.parse_clock(data.quiet_hours.start),
                        quiet_hours.parse_clock(data.quiet_hours.end),
                    )
                ),
            )
            if data.tier is not msgspec.UNSET:
                await follow_tier(conn, tenant_id=tenant.id)
            # Caps and alert settings live beside the tenant's row: a row of their own.
            limits = await changes.set_limits(
                conn,
                actor,
                tenant_id=tenant.id,
                destinations=services(state).destinations,
                daily_spend_cap=data.daily_spend_cap,
                monthly_spend_cap=data.monthly_spend_cap,
                low_balance_threshold=data.low_balance_threshold,
                alerts_url=data.alerts_url,
                spend_alert_percents=data.spend_alert_percents,
            )
        return tenant_view(tenant, balance, limits)

    @post(
        "/tenants/{tenant_id:str}/credits",
        dto=StrictBody[CreditRequest],
        return_dto=None,
        status_code=201,
        responses={
            200: ResponseSpec(BalanceView, description="A repeated reference: nothing credited")
        },
        description="Credits once per reference; a repeated reference answers 200 with "
        "the current balances and credits nothing.",
    )
    async def add_credit(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
        data: JSONBody[CreditRequest],
    ) -> Response[BalanceView]:
        async with conn.transaction():
            created, balance = await changes.add_credit(
                conn,
                actor,
                tenant_id=parse_id(tenant_id, "tenant"),
                amount=data.amount,
                reference=data.reference,
            )
        view = BalanceView(
            available=balance.available, held=balance.held, captured=balance.captured
        )
        return Response(view, status_code=201 if created else 200)

    @post("/tenants/{tenant_id:str}/api-keys", status_code=201)
    async def create_api_key(
        self, conn: NamedDependency[Conn], actor: NamedDependency[Actor], tenant_id: FromPath[str]
    ) -> ApiKeyCreated:
        async with conn.transaction():
            key = await changes.issue_api_key(conn, actor, tenant_id=parse_id(tenant_id, "tenant"))
        return ApiKeyCreated(
            id=key.id, tenant_id=key.tenant_id, api_key=key.api_key, created_at=key.created_at
        )

    @delete("/api-keys/{key_id:str}", status_code=204)
    async def revoke_api_key(
        self, conn: NamedDependency[Conn], actor: NamedDependency[Actor], key_id: FromPath[str]
    ) -> None:
        async with conn.transaction():
            await changes.revoke_api_key(conn, actor, key_id=parse_id(key_id, "API key"))

    # -- SMPP credentials (issue 9) -------------------------------------------------------

    @post(
        "/tenants/{tenant_id:str}/smpp-credentials",
        dto=_OptionalBody[SmppCredentialsRequest],
        return_dto=None,
        status_code=201,
        responses=problems(409),
        description="The tenant's SMPP system_id and a new password (8 characters, shown "
        "once); binds made with the previous password are closed. Send `{}` for the "
        "defaults (a request with no body at all is refused with 400).",
    )
    async def issue_smpp_credentials(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
        data: JSONBody[SmppCredentialsRequest],
    ) -> SmppCredentialsIssued:
        async with conn.transaction():
            before = await smpp_accounts.find_account(conn, tenant_id=parse_id(tenant_id, "tenant"))
            account, password = await smpp_accounts.issue_credentials(
                conn,
                tenant_id=parse_id(tenant_id, "tenant"),
                system_id=data.system_id,
                max_binds=data.max_binds,
                allowed_networks=data.allowed_networks,
            )
            await audit.record(
                conn,
                actor=actor,
                action="smpp_account.created" if before is None else "smpp_account.password_reset",
                target=f"smpp_account:{account.system_id}",
                tenant_id=account.tenant_id,
                before=before,
                after={**audit.mask(account), "password": password},  # masked as a secret
            )
        return SmppCredentialsIssued(
            tenant_id=account.tenant_id,
            system_id=account.system_id,
            password=password,
            max_binds=account.max_binds,
            allowed_networks=account.allowed_networks,
            created_at=account.created_at,
        )

    @get("/tenants/{tenant_id:str}/smpp-credentials")
    async def get_smpp_credentials(
        self, conn: NamedDependency[Conn], tenant_id: FromPath[str]
    ) -> SmppCredentialsView:
        """The tenant's SMPP account (never the password) and its binds up now."""
        account, binds = await smpp_accounts.get_account(
            conn, tenant_id=parse_id(tenant_id, "tenant")
        )
        return _smpp_view(account, binds)

    @patch(
        "/tenants/{tenant_id:str}/smpp-credentials",
        dto=StrictBody[SmppCredentialsUpdate],
        return_dto=None,
    )
    async def update_smpp_credentials(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
        data: JSONBody[SmppCredentialsUpdate],
    ) -> SmppCredentialsView:
        """Change the bind limit or the allowed networks (binds already up stay)."""
        async with conn.transaction():
            before = await smpp_accounts.find_account(conn, tenant_id=parse_id(tenant_id, "tenant"))
            account, binds = await smpp_accounts.update_account(
                conn,
                tenant_id=parse_id(tenant_id, "tenant"),
                max_binds=data.max_binds,
                allowed_networks=data.allowed_networks,
            )
            await audit.record(
                conn,
                actor=actor,
                action="smpp_account.updated",
                target=f"smpp_account:{account.system_id}",
                tenant_id=account.tenant_id,
                before=before,
                after=account,
            )
        return _smpp_view(account, binds)

    @delete("/tenants/{tenant_id:str}/smpp-credentials", status_code=204)
    async def delete_smpp_credentials(
        self, conn: NamedDependency[Conn], actor: NamedDependency[Actor], tenant_id: FromPath[str]
    ) -> None:
        """No more binds; the tenant's binds up now are closed within seconds."""
        async with conn.transaction():
            before = await smpp_accounts.find_account(conn, tenant_id=parse_id(tenant_id, "tenant"))
            await smpp_accounts.delete_account(conn, tenant_id=parse_id(tenant_id, "tenant"))
            assert before is not None  # delete_account found it
            await audit.record(
                conn,
                actor=actor,
                action="smpp_account.deleted",
                target=f"smpp_account:{before.system_id}",
                tenant_id=before.tenant_id,
                before=before,
            )


def _smpp_view(account: smpp_accounts.SmppAccount, binds: int) -> SmppCredentialsView:
    return SmppCredentialsView(
        tenant_id=account.tenant_id,
        system_id=account.system_id,
        max_binds=account.max_binds,
        allowed_networks=account.allowed_networks,
        binds=binds,
        created_at=account.created_at,
        password_changed_at=account.password_changed_at,
    )
