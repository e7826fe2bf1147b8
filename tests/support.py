"""Helpers shared by the tests: schema loading, tenants, sends."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx
import psycopg
from procrastinate.schema import SchemaManager

VALID_TO = "+14155552671"  # a valid US number per libphonenumber
OTHER_TO = "+447911123456"  # a valid UK mobile


def load_schema(conn: psycopg.Connection[Any]) -> None:
    """procrastinate's schema, then ours from db/schema.sql, then today's partitions."""
    conn.execute(SchemaManager.get_schema())
    conn.execute(resources.files("db").joinpath("schema.sql").read_text("utf-8"))
    conn.execute("SELECT smsgw_ensure_partitions_v1((now() AT TIME ZONE 'UTC')::date - 1, 8)")


@dataclass(frozen=True)
class TenantHandle:
    id: str
    api_key: str
    webhook_secret: str
    body: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def make_tenant(
    api: httpx.AsyncClient,
    admin_headers: dict[str, str],
    *,
    credit: int = 0,
    name: str = "acme",
    tier: str = "standard",
    **fields: Any,
) -> TenantHandle:
    created = await api.post(
        "/v1/admin/tenants", json={"name": name, "tier": tier, **fields}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    body = created.json()
    if credit:
        credited = await api.post(
            f"/v1/admin/tenants/{body['id']}/credits",
            json={"amount": credit, "reference": f"initial-{body['id']}"},
            headers=admin_headers,
        )
        assert credited.status_code == 201, credited.text
    return TenantHandle(body["id"], body["api_key"], body["webhook_secret"], body)


async def send(
    api: httpx.AsyncClient,
    tenant: TenantHandle,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    payload = {"to": VALID_TO, "body": "hello", **fields}
    return await api.post(
        "/v1/messages", json=payload, headers={**tenant.headers, **(headers or {})}
    )


async def balance(api: httpx.AsyncClient, tenant: TenantHandle) -> dict[str, Any]:
    response = await api.get("/v1/balance", headers=tenant.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
