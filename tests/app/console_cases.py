"""What the consoles' audit walk (tests/app/test_console_audit.py) is made of: a world of
signed-in users and the console changes it makes, and the cases of the operator's pages
for route edits, spend caps, geo permissions, suspensions and cost lists."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from tests.support import TenantHandle

SHOWN_ONCE = re.compile(r'id="(?:new-api-key|new-secret|invitation-link)">([^<]+)<')
WEBHOOK_SECRET = re.compile(r"<code>(whsec_[^<]+)</code>")

Who = Literal["operator", "owner", "joiner"]


@dataclass
class World:
    api: httpx.AsyncClient
    admin: dict[str, str]
    tenant: TenantHandle
    sessions: dict[str, tuple[httpx.Cookies, str]] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)
    conn: Any = None  # the test's connection, for what only the workers make (suspensions)

    def be(self, who: str) -> str:
        """This client as ``who`` (their session cookie); their CSRF token."""
        cookies, csrf = self.sessions[who]
        self.api.cookies = httpx.Cookies(cookies)
        return csrf

    async def post(self, who: str, url: str, **data: str) -> httpx.Response:
        csrf = self.be(who)
        response = await self.api.post(url, data={**data, "csrf_token": csrf})
        assert response.status_code < 400, f"{url}: {response.text[:800]}"
        self.secrets |= set(SHOWN_ONCE.findall(response.text))
        self.secrets |= set(WEBHOOK_SECRET.findall(response.text))
        return response


@dataclass(frozen=True)
class Change:
    actions: tuple[str, ...]
    who: Who
    call: Callable[[World, str], Awaitable[httpx.Response]]
    # What must exist first; its result goes to `call` (None: nothing).
    prepare: Callable[[World], Awaitable[str]] | None = None
    tenant_scoped: bool = True
    before: tuple[str, ...] | None = ()
    after: tuple[str, ...] | None = ()


def tenant_page(w: World) -> str:
    return f"/console/operator/tenants/{w.tenant.id}"


async def provider(w: World) -> str:
    put = await w.api.put(
        "/v1/admin/providers/audited",
        json={"kind": "http", "config": {"url": "http://127.0.0.1:9/", "api_key": "p-s3cret"}},
        headers=w.admin,
    )
    assert put.status_code == 200, put.text
    w.secrets.add("p-s3cret")
    return "audited"


async def route(w: World) -> str:
    await provider(w)
    added = await w.api.post("/v1/admin/routes", json={"provider": "audited"}, headers=w.admin)
    return str(added.json()["id"])


async def suspension(w: World) -> str:
    """A suspension as pumping protection makes one (the workers' round is not run)."""
    cursor = await w.conn.execute(
        "INSERT INTO destination_suspensions (tenant_id, country, prefix, until, cause)"
        " VALUES (%s, 'GB', '', now() + interval '12 hours', '{}') RETURNING id",
        (w.tenant.id,),
    )
    return str((await cursor.fetchone())["id"])


COSTS = "prefix,country,network,price\n44,GB,,2500\n"


async def cost_list_preview(w: World) -> str:
    """The cost list the confirm form carries back, once previewed."""
    await provider(w)
    w.be("operator")
    preview = await w.api.post(
        "/console/operator/cost-lists/preview",
        data={"provider": "audited", "csrf_token": w.sessions["operator"][1]},
        files={"file": ("costs.csv", COSTS.encode(), "text/csv")},
    )
    assert preview.status_code == 200, preview.text
    return COSTS


OPERATOR_CHANGES: dict[str, Change] = {
    "/console/operator/routes/{route_id}": Change(
        ("route.updated",),
        "operator",
        lambda w, route: w.post(
            "operator",
            f"/console/operator/routes/{route}",
            prefix="+33",
            tier="",
            provider="audited",
            priority="4",
            cost_per_segment="0",
            enabled="true",
        ),
        prepare=route,
        tenant_scoped=False,
        before=("prefix", "priority"),
        after=("prefix", "priority"),
    ),
    "/console/operator/tenants/{tenant_id}/caps": Change(
        ("tenant_limits.updated",),
        "operator",
        lambda w, _: w.post(
            "operator", tenant_page(w) + "/caps", daily_spend_cap="5", monthly_spend_cap="100"
        ),
        before=("daily_spend_cap", "monthly_spend_cap"),
        after=("daily_spend_cap", "monthly_spend_cap"),
    ),
    "/console/operator/tenants/{tenant_id}/geo-permissions": Change(
        ("geo_permissions.set",),
        "operator",
        lambda w, _: w.post(
            "operator", tenant_page(w) + "/geo-permissions", scope="listed", countries="GB"
        ),
        before=("countries",),
        after=("countries",),
    ),
    "/console/operator/suspensions/{suspension_id}/lift": Change(
        ("suspension.lifted",),
        "operator",
        lambda w, s: w.post("operator", f"/console/operator/suspensions/{s}/lift"),
        prepare=suspension,
        before=("lifted_at",),
        after=("lifted_at", "lifted_by"),
    ),
    "/console/operator/cost-lists/confirm": Change(
        ("provider_costs.imported",),
        "operator",
        lambda w, csv: w.post(
            "operator",
            "/console/operator/cost-lists/confirm",
            provider="audited",
            csv=csv,
            against="",
            effective_at="",
        ),
        prepare=cost_list_preview,
        tenant_scoped=False,
        before=("version",),
        after=("card", "version", "rates"),
    ),
}
