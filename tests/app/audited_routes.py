"""The cases of tests/app/test_audit_routes.py: every admin and tenant route that changes a
setting (CHANGES: how to make the change, and the fields its audit row must show) and
those that change no setting (NOT_SETTINGS, with the reason), plus the readers both
audit tests share."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests import support
from tests.support import TenantHandle

CSV = {"Content-Type": "text/csv"}
CARD = "prefix,country,network,price\n44,GB,,5000\n1,US,,4000\n"
ADDRESS = "127.0.0.1"  # httpx's ASGI transport: the client every test request comes from


@dataclass
class World:
    api: httpx.AsyncClient
    admin: dict[str, str]
    tenant: TenantHandle
    # Every secret shown once to a caller: none may reach the audit trail.
    secrets: set[str] = field(default_factory=set)
    conn: Any = None

    async def ok(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.admin)
        response = await self.api.request(method, url, **kwargs)
        assert response.status_code < 300, f"{method} {url}: {response.text}"
        return response

    async def provider(self, name: str = "audited") -> None:
        await self.ok(
            "PUT",
            f"/v1/admin/providers/{name}",
            json={
                "kind": "http",
                "config": {
                    "url": "http://127.0.0.1:9/",
                    "api_key": "provider-api-key-s3cret",
                    "dlr_secret": "provider-dlr-s3cret",
                },
            },
        )
        self.secrets |= {"provider-api-key-s3cret", "provider-dlr-s3cret"}


Prepare = Callable[[World], Awaitable[str]]
Call = Callable[[World, str], Awaitable[httpx.Response]]


async def _nothing(w: World) -> str:
    return ""


@dataclass(frozen=True)
class Change:
    action: str
    call: Call
    prepare: Prepare = _nothing  # what must exist first; its result goes to `call`
    tenant_scoped: bool = True
    # The fields `before` and `after` must show (None: that side is empty).
    before: tuple[str, ...] | None = ()
    after: tuple[str, ...] | None = ()


async def _key(w: World) -> str:
    body = (await w.ok("POST", f"/v1/admin/tenants/{w.tenant.id}/api-keys")).json()
    w.secrets.add(body["api_key"])
    return str(body["id"])


async def _smpp(w: World) -> str:
    url = f"/v1/admin/tenants/{w.tenant.id}/smpp-credentials"
    body = (await w.ok("POST", url, json={"system_id": "audited"})).json()
    w.secrets.add(body["password"])
    return url


async def _sender_id(w: World) -> str:
    await support.register_sender(w.api, w.admin, w.tenant, "AUDITED")
    return "AUDITED"


async def _rule(w: World) -> str:
    await w.ok("PUT", "/v1/admin/sender-rules/FR", json={"alphanumeric": "registered"})
    return "FR"


async def _number(w: World) -> str:
    await support.own_number(w.api, w.admin, w.tenant, "+14155550177")
    return "+14155550177"


async def _provider(w: World) -> str:
    await w.provider()
    return "audited"


async def _route(w: World) -> str:
    await w.provider()
    return str((await w.ok("POST", "/v1/admin/routes", json={"provider": "audited"})).json()["id"])


async def _suppressed(w: World) -> str:
    await w.ok(
        "POST", "/v1/suppressions", json={"recipient": "+447911123488"}, headers=w.tenant.headers
    )
    return "+447911123488"


async def _suspension(w: World) -> str:
    cursor = await w.conn.execute(
        "INSERT INTO destination_suspensions (tenant_id, country, prefix, until, cause)"
        " VALUES (%s, 'GB', '4470', now() + interval '12 hours', '{}')"
        " ON CONFLICT (tenant_id, country, prefix) DO UPDATE"
        " SET lifted_at = NULL, lifted_by = NULL, until = excluded.until RETURNING id",
        (w.tenant.id,),
    )
    return str((await cursor.fetchone())["id"])


async def _tenant_suspended(w: World) -> str:
    await w.ok("PUT", _t(w) + "/suspension", json={"reason": "under review"})
    return ""


async def _pumping_limit(w: World) -> str:
    await w.ok("PUT", "/v1/admin/pumping-limits/FR", json={"hourly_limit": 5000})
    return "FR"


def _t(w: World) -> str:
    return f"/v1/admin/tenants/{w.tenant.id}"


CHANGES: dict[tuple[str, str], Change] = {
    ("POST", "/v1/admin/tenants"): Change(
        "tenant.created",
        lambda w, _: w.ok("POST", "/v1/admin/tenants", json={"name": "audited", "tier": "vip"}),
        tenant_scoped=False,  # a new tenant: its id is the row's tenant_id
        before=None,
        after=("name", "tier", "webhook_secret", "api_key_id"),
    ),
    ("PATCH", "/v1/admin/tenants/{tenant_id}"): Change(
        "tenant.updated",
        lambda w, _: w.ok("PATCH", _t(w), json={"rate_limit_mps": 7, "help_reply": "Help!"}),
        before=("rate_limit_mps", "help_reply"),
        after=("rate_limit_mps", "help_reply"),
    ),
    ("POST", "/v1/admin/tenants/{tenant_id}/credits"): Change(
        "credit.topped_up",
        lambda w, _: w.ok("POST", _t(w) + "/credits", json={"amount": 5, "reference": "a-1"}),
        before=("available",),
        after=("available", "amount", "reference"),
    ),
    ("PUT", "/v1/admin/tenants/{tenant_id}/suspension"): Change(
        "tenant.suspended",
        lambda w, _: w.ok("PUT", _t(w) + "/suspension", json={"reason": "fraud"}),
        before=("suspended_at", "suspension_reason"),
        after=("suspended_at", "suspension_reason", "messages_held"),
    ),
    ("DELETE", "/v1/admin/tenants/{tenant_id}/suspension"): Change(
        "tenant.resumed",
        lambda w, _: w.ok("DELETE", _t(w) + "/suspension"),
        prepare=_tenant_suspended,
        before=("suspended_at", "suspension_reason"),
        after=("suspended_at", "suspension_reason", "messages_released"),
    ),
    ("POST", "/v1/admin/tenants/{tenant_id}/api-keys"): Change(
        "api_key.created",
        lambda w, _: w.ok("POST", _t(w) + "/api-keys"),
        before=None,
        after=("id", "api_key", "created_at"),
    ),
    ("DELETE", "/v1/admin/api-keys/{key_id}"): Change(
        "api_key.revoked",
        lambda w, key: w.ok("DELETE", f"/v1/admin/api-keys/{key}"),
        prepare=_key,
        before=("revoked_at",),
        after=("revoked_at",),
    ),
    ("POST", "/v1/admin/tenants/{tenant_id}/smpp-credentials"): Change(
        "smpp_account.created",
        lambda w, _: w.ok("POST", _t(w) + "/smpp-credentials", json={}),
        before=None,
        after=("system_id", "max_binds", "password"),
    ),
    ("PATCH", "/v1/admin/tenants/{tenant_id}/smpp-credentials"): Change(
        "smpp_account.updated",
        lambda w, url: w.ok("PATCH", url, json={"max_binds": 3}),
        prepare=_smpp,
        before=("max_binds",),
        after=("max_binds",),
    ),
    ("DELETE", "/v1/admin/tenants/{tenant_id}/smpp-credentials"): Change(
        "smpp_account.deleted",
        lambda w, url: w.ok("DELETE", url),
        prepare=_smpp,
        before=("system_id", "max_binds"),
        after=None,
    ),
    ("POST", "/v1/admin/tenants/{tenant_id}/sender-ids"): Change(
        "sender_id.registered",
        lambda w, _: w.ok("POST", _t(w) + "/sender-ids", json={"sender_id": "ACME"}),
        before=None,
        after=("sender_id", "status", "countries"),
    ),
    ("DELETE", "/v1/admin/tenants/{tenant_id}/sender-ids/{sender_id}"): Change(
        "sender_id.deleted",
        lambda w, sender: w.ok("DELETE", _t(w) + f"/sender-ids/{sender}"),
        prepare=_sender_id,
        before=("sender_id", "status"),
        after=None,
    ),
    ("PUT", "/v1/admin/sender-rules/{country}"): Change(
        "sender_rule.set",
        lambda w, country: w.ok(
            "PUT", f"/v1/admin/sender-rules/{country}", json={"alphanumeric": "not_supported"}
        ),
        prepare=_rule,
        tenant_scoped=False,
        before=("alphanumeric",),
        after=("alphanumeric",),
    ),
    ("DELETE", "/v1/admin/sender-rules/{country}"): Change(
        "sender_rule.deleted",
        lambda w, country: w.ok("DELETE", f"/v1/admin/sender-rules/{country}"),
        prepare=_rule,
        tenant_scoped=False,
        before=("country", "alphanumeric"),
        after=None,
    ),
    ("POST", "/v1/admin/tenants/{tenant_id}/numbers"): Change(
        "number.added",
        lambda w, _: w.ok("POST", _t(w) + "/numbers", json={"number": "+14155550166"}),
        before=None,
        after=("number",),
    ),
    ("DELETE", "/v1/admin/tenants/{tenant_id}/numbers/{number}"): Change(
        "number.removed",
        lambda w, number: w.ok("DELETE", _t(w) + f"/numbers/{number}"),
        prepare=_number,
        before=("number",),
        after=None,
    ),
    ("POST", "/v1/admin/tenants/{tenant_id}/twilio-credentials"): Change(
        "twilio_credentials.issued",
        lambda w, _: w.ok("POST", _t(w) + "/twilio-credentials"),
        before=None,
        after=("account_sid", "auth_token"),
    ),
    ("PUT", "/v1/admin/providers/{name}"): Change(
        "provider.updated",
        lambda w, _: w.ok(
            "PUT",
            "/v1/admin/providers/audited",
            json={"kind": "http", "config": {"url": "http://127.0.0.1:8/"}, "mps": 5},
        ),
        prepare=_provider,
        tenant_scoped=False,
        before=("config", "mps"),
        after=("config", "mps"),
    ),
    ("POST", "/v1/admin/routes"): Change(
        "route.created",
        lambda w, _: w.ok(
            "POST", "/v1/admin/routes", json={"provider": "audited", "prefix": "+44"}
        ),
        prepare=_provider,
        tenant_scoped=False,
        before=None,
        after=("prefix", "provider"),
    ),
    ("PATCH", "/v1/admin/routes/{route_id}"): Change(
        "route.updated",
        lambda w, route: w.ok("PATCH", f"/v1/admin/routes/{route}", json={"priority": 7}),
        prepare=_route,
        tenant_scoped=False,
        before=("priority",),
        after=("priority",),
    ),
    ("DELETE", "/v1/admin/routes/{route_id}"): Change(
        "route.deleted",
        lambda w, route: w.ok("DELETE", f"/v1/admin/routes/{route}"),
        prepare=_route,
        tenant_scoped=False,
        before=("id", "provider"),
        after=None,
    ),
    ("POST", "/v1/admin/rate-cards/{card}/versions"): Change(
        "rate_card.version_imported",
        lambda w, _: w.ok(
            "POST",
            "/v1/admin/rate-cards/audited/versions",
            content=CARD,
            headers={**w.admin, **CSV},
        ),
        tenant_scoped=False,
        before=("version",),
        after=("card", "version", "rates"),
    ),
    ("POST", "/v1/admin/providers/{name}/costs"): Change(
        "provider_costs.imported",
        lambda w, _: w.ok(
            "POST", "/v1/admin/providers/audited/costs", content=CARD, headers={**w.admin, **CSV}
        ),
        prepare=_provider,
        tenant_scoped=False,
        before=("version",),
        after=("card", "version", "rates"),
    ),
    ("PUT", "/v1/admin/tenants/{tenant_id}/rates"): Change(
        "tenant_rates.replaced",
        lambda w, _: w.ok("PUT", _t(w) + "/rates", content=CARD, headers={**w.admin, **CSV}),
        before=("version",),
        after=("card", "version", "rates"),
    ),
    ("PUT", "/v1/admin/tenants/{tenant_id}/geo-permissions"): Change(
        "geo_permissions.set",
        lambda w, _: w.ok("PUT", _t(w) + "/geo-permissions", json={"countries": ["US", "GB"]}),
        before=("countries",),
        after=("countries",),
    ),
    ("PUT", "/v1/admin/high-risk-countries"): Change(
        "high_risk_countries.set",
        lambda w, _: w.ok("PUT", "/v1/admin/high-risk-countries", json={"countries": ["FK"]}),
        tenant_scoped=False,
        before=("countries",),
        after=("countries",),
    ),
    ("PUT", "/v1/admin/pumping-limits/{country}"): Change(
        "pumping_limit.set",
        lambda w, _: w.ok("PUT", "/v1/admin/pumping-limits/DE", json={"hourly_limit": 7000}),
        tenant_scoped=False,
        before=None,
        after=("hourly_limit",),
    ),
    ("DELETE", "/v1/admin/pumping-limits/{country}"): Change(
        "pumping_limit.deleted",
        lambda w, country: w.ok("DELETE", f"/v1/admin/pumping-limits/{country}"),
        prepare=_pumping_limit,
        tenant_scoped=False,
        before=("hourly_limit",),
        after=None,
    ),
    ("DELETE", "/v1/admin/suspensions/{suspension_id}"): Change(
        "suspension.lifted",
        lambda w, suspension: w.ok("DELETE", f"/v1/admin/suspensions/{suspension}"),
        prepare=_suspension,
        before=("lifted_at",),
        after=("lifted_at", "lifted_by"),
    ),
    ("DELETE", "/v1/suspensions/{suspension_id}"): Change(
        "suspension.lifted",
        lambda w, suspension: w.ok(
            "DELETE", f"/v1/suspensions/{suspension}", headers=w.tenant.headers
        ),
        prepare=_suspension,
        before=("lifted_at",),
        after=("lifted_at", "lifted_by"),
    ),
    ("PATCH", "/v1/alerts"): Change(
        "alert_settings.updated",
        lambda w, _: w.ok(
            "PATCH", "/v1/alerts", json={"low_balance_threshold": 1000}, headers=w.tenant.headers
        ),
        before=("low_balance_threshold",),
        after=("low_balance_threshold",),
    ),
    ("POST", "/v1/webhooks/secret"): Change(
        "webhook_secret.rotated",
        lambda w, _: w.ok("POST", "/v1/webhooks/secret", headers=w.tenant.headers),
        before=None,
        after=("webhook_secret",),
    ),
    ("POST", "/v1/suppressions"): Change(
        "suppression.added",
        lambda w, _: w.ok(
            "POST",
            "/v1/suppressions",
            json={"recipient": "+447911123477"},
            headers=w.tenant.headers,
        ),
        before=None,
        after=("recipient", "number", "source"),
    ),
    ("DELETE", "/v1/suppressions/{recipient}"): Change(
        "suppression.removed",
        lambda w, recipient: w.ok(
            "DELETE", f"/v1/suppressions/{recipient}", headers=w.tenant.headers
        ),
        prepare=_suppressed,
        before=("recipient", "numbers"),
        after=None,
    ),
}

# Routes that change something but no setting, each with the reason it has no audit row.
NOT_SETTINGS: dict[tuple[str, str], str] = {
    ("POST", "/v1/messages"): "traffic: a send is its own record (messages, ledger)",
    ("POST", "/v1/messages/batch"): "traffic: sends, recorded as messages and ledger entries",
    ("POST", "/v1/messages/quote"): "changes nothing: a price quote",
    ("POST", "/v1/messages/{message_id}/cancel"): "traffic: a message's status history",
    ("POST", "/2010-04-01/Accounts/{account_sid}/Messages.json"): "traffic: a send",
    ("POST", "/2010-04-01/Accounts/{account_sid}/Messages/{resource}"): "traffic: a cancel",
    ("POST", "/v1/providers/{provider}/dlr"): "upstream traffic: receipts",
    ("POST", "/v1/providers/{provider}/inbound"): "upstream traffic: inbound messages",
}


def _json(response: httpx.Response) -> Any:
    return response.json() if response.content else None


async def _tenant_key_id(conn: Any, tenant: TenantHandle) -> str:
    prefix = tenant.api_key.split("_")[1]
    [row] = await _rows(conn, "SELECT id::text AS id FROM api_keys WHERE prefix = %s", prefix)
    return str(row["id"])


async def _last_id(conn: Any) -> int:
    [row] = await _rows(conn, "SELECT coalesce(max(id), 0) AS id FROM audit_events")
    return int(row["id"])


async def _rows(conn: Any, query: str, *params: Any) -> list[dict[str, Any]]:
    cursor = await conn.execute(query, params)
    return list(await cursor.fetchall())
