"""Exposure controls (issue 25): geo permissions, the operator's high-risk countries and
pumping limits, suspensions (listed, lifted) and the tenant's alert settings. Spend caps
are set with PATCH /v1/admin/tenants/{id} (app/controllers/admin.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, patch, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody

from app.auth import admin_guard, provide_tenant, tenant_guard
from app.body import StrictBody
from app.controllers.admin import parse_id
from app.deps import services
from core import audit, changes, exposure
from core.audit import Actor
from core.errors import FieldError, InvalidRequest
from core.tenants import Tenant
from db import Conn, Row


class GeoPermissionsRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    countries: Annotated[
        list[str] | None,
        msgspec.Meta(
            description="ISO 3166 alpha-2 codes the tenant may send to; null: every "
            "country but the operator's high-risk ones not enabled for it"
        ),
    ]
    high_risk_enabled: Annotated[
        list[str],
        msgspec.Meta(description="High-risk countries enabled for this tenant"),
    ] = msgspec.field(default_factory=list)


class CountriesRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    countries: list[str]


class PumpingLimitRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    hourly_limit: Annotated[
        int, msgspec.Meta(description="Messages per hour per tenant to the country")
    ]


class PumpingLimitView(msgspec.Struct, kw_only=True):
    country: str
    hourly_limit: int


class AlertSettingsRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Absent fields stay as they are; null removes."""

    alerts_url: str | msgspec.UnsetType | None = msgspec.UNSET
    low_balance_threshold: int | msgspec.UnsetType | None = msgspec.UNSET
    spend_alert_percents: list[int] | msgspec.UnsetType = msgspec.UNSET


class SuspensionPage(msgspec.Struct, kw_only=True):
    suspensions: list[exposure.Suspension]


def _tenant_filter(raw: str | None) -> uuid.UUID | None:
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidRequest(
            "The query is not valid.", [FieldError("tenant_id", "must be a tenant id (UUID)")]
        ) from None


class ExposureAdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]
    guards = [admin_guard]

    @get("/tenants/{tenant_id:str}/geo-permissions")
    async def get_geo_permissions(
        self, conn: NamedDependency[Conn], tenant_id: FromPath[str]
    ) -> exposure.GeoPermissions:
        return await exposure.get_geo_permissions(conn, tenant_id=parse_id(tenant_id, "tenant"))

    @put(
        "/tenants/{tenant_id:str}/geo-permissions",
        dto=StrictBody[GeoPermissionsRequest],
        return_dto=None,
    )
    async def set_geo_permissions(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        tenant_id: FromPath[str],
        data: JSONBody[GeoPermissionsRequest],
    ) -> exposure.GeoPermissions:
        """The countries the tenant may send to (`null`: all but the high-risk ones),
        and the operator's high-risk countries enabled for it. A send elsewhere is
        refused with 422 destination_not_permitted."""
        async with conn.transaction():
            after = await changes.set_geo_permissions(
                conn,
                actor,
                tenant_id=parse_id(tenant_id, "tenant"),
                countries=data.countries,
                high_risk_enabled=data.high_risk_enabled,
            )
        return after

    @get("/high-risk-countries")
    async def get_high_risk(self, conn: NamedDependency[Conn]) -> CountriesRequest:
        return CountriesRequest(countries=await exposure.get_high_risk_countries(conn))

    @put("/high-risk-countries", dto=StrictBody[CountriesRequest], return_dto=None)
    async def set_high_risk(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        data: JSONBody[CountriesRequest],
    ) -> CountriesRequest:
        """The operator's high-risk countries: off for every tenant until enabled for it
        (its geo permissions' `high_risk_enabled`)."""
        async with conn.transaction():
            before = await exposure.get_high_risk_countries(conn)
            listed = await exposure.set_high_risk_countries(conn, countries=data.countries)
            await audit.record(
                conn,
                actor=actor,
                action="high_risk_countries.set",
                target="high_risk_countries",
                before={"countries": before},
                after={"countries": listed},
            )
        return CountriesRequest(countries=listed)

    @get("/pumping-limits")
    async def list_pumping_limits(self, conn: NamedDependency[Conn]) -> list[PumpingLimitView]:
        return [
            PumpingLimitView(country=r["country"], hourly_limit=r["hourly_limit"])
            for r in await exposure.pumping_limits(conn)
        ]

    @put("/pumping-limits/{country:str}", dto=StrictBody[PumpingLimitRequest], return_dto=None)
    async def set_pumping_limit(
        self,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        country: FromPath[str],
        data: JSONBody[PumpingLimitRequest],
    ) -> PumpingLimitView:
        """A tenant's hourly sends to `country` over this suspend the destination (instead
        of the learned limit: a multiple of its 7-day hourly median, with a floor)."""
        async with conn.transaction():
            before = _pumping_limit(await exposure.pumping_limits(conn), country)
            row = await exposure.set_pumping_limit(
                conn, country=country, hourly_limit=data.hourly_limit
            )
            await audit.record(
                conn,
                actor=actor,
                action="pumping_limit.set",
                target=f"pumping_limit:{row['country']}",
                before=before,
                after={"hourly_limit": row["hourly_limit"]},
            )
        return PumpingLimitView(country=row["country"], hourly_limit=row["hourly_limit"])

    @delete("/pumping-limits/{country:str}", status_code=204)
    async def delete_pumping_limit(
        self, conn: NamedDependency[Conn], actor: NamedDependency[Actor], country: FromPath[str]
    ) -> None:
        async with conn.transaction():
            before = _pumping_limit(await exposure.pumping_limits(conn), country)
            await exposure.delete_pumping_limit(conn, country=country)
            if before is not None:  # none there: nothing changed
                await audit.record(
                    conn,
                    actor=actor,
                    action="pumping_limit.deleted",
                    target=f"pumping_limit:{country}",
                    before=before,
                )

    @get("/suspensions")
    async def list_suspensions(
        self,
        conn: NamedDependency[Conn],
        tenant_id: FromQuery[str | None] = None,
        include_ended: FromQuery[bool] = False,
    ) -> SuspensionPage:
        """Destinations suspended by pumping protection, newest first, with their cause;
        every tenant's unless `tenant_id`; ended ones too with `include_ended`."""
        found = await exposure.list_suspensions(
            conn, tenant_id=_tenant_filter(tenant_id), include_ended=include_ended
        )
        return SuspensionPage(suspensions=found)

    @delete("/suspensions/{suspension_id:str}", status_code=200)
    async def lift(
        self,
        state: State,
        conn: NamedDependency[Conn],
        actor: NamedDependency[Actor],
        suspension_id: FromPath[str],
    ) -> exposure.Suspension:
        """Lift a suspension: sends are accepted again and the held messages go."""
        async with conn.transaction():
            lifted = await changes.lift_suspension(
                conn,
                actor,
                suspension_id=parse_id(suspension_id, "suspension"),
                tenant_id=None,
                by="operator",
                task=services(state).scheduler.task,
            )
        return lifted


class ExposureController(Controller):
    path = "/v1"
    tags = ["account"]
    guards = [tenant_guard]
    dependencies = {"tenant": Provide(provide_tenant, sync_to_thread=False)}

    @get("/geo-permissions")
    async def geo_permissions(
        self, conn: NamedDependency[Conn], tenant: NamedDependency[Tenant]
    ) -> exposure.GeoPermissions:
        """Where this account may send (set by the operator)."""
        return await exposure.get_geo_permissions(conn, tenant_id=tenant.id)

    @get("/suspensions")
    async def suspensions(
        self,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        include_ended: FromQuery[bool] = False,
    ) -> SuspensionPage:
        """This account's destinations suspended by pumping protection, with the cause."""
        found = await exposure.list_suspensions(
            conn, tenant_id=tenant.id, include_ended=include_ended
        )
        return SuspensionPage(suspensions=found)

    @delete("/suspensions/{suspension_id:str}", status_code=200)
    async def lift(
        self,
        state: State,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        actor: NamedDependency[Actor],
        suspension_id: FromPath[str],
    ) -> exposure.Suspension:
        """Lift one of this account's suspensions (its traffic there is legitimate)."""
        async with conn.transaction():
            lifted = await changes.lift_suspension(
                conn,
                actor,
                suspension_id=parse_id(suspension_id, "suspension"),
                tenant_id=tenant.id,
                by="tenant",
                task=services(state).scheduler.task,
            )
        return lifted

    @get("/alerts")
    async def alert_settings(
        self, conn: NamedDependency[Conn], tenant: NamedDependency[Tenant]
    ) -> exposure.Limits:
        """This account's alert settings, spend caps and spend this UTC day and month."""
        return await exposure.get_limits(conn, tenant_id=tenant.id)

    @patch("/alerts", dto=StrictBody[AlertSettingsRequest], return_dto=None)
    async def set_alert_settings(
        self,
        state: State,
        conn: NamedDependency[Conn],
        tenant: NamedDependency[Tenant],
        actor: NamedDependency[Actor],
        data: JSONBody[AlertSettingsRequest],
    ) -> exposure.Limits:
        """Where alerts go (`alerts_url`, signed like status callbacks), the available
        credit under which balance.low is sent, and the shares of a cap that send
        spend.threshold."""
        async with conn.transaction():
            before = await exposure.get_limits(conn, tenant_id=tenant.id)
            after = await exposure.set_limits(
                conn,
                tenant_id=tenant.id,
                alerts_url=data.alerts_url,
                low_balance_threshold=data.low_balance_threshold,
                spend_alert_percents=data.spend_alert_percents,
                destinations=services(state).destinations,
            )
            await audit.record(
                conn,
                actor=actor,
                action="alert_settings.updated",
                target=f"tenant:{tenant.id}",
                tenant_id=tenant.id,
                before=before,
                after=after,
            )
        return after


def _pumping_limit(rows: list[Row], country: str) -> dict[str, int] | None:
    found = next((r for r in rows if r["country"] == country), None)
    return None if found is None else {"hourly_limit": found["hourly_limit"]}
