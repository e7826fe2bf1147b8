"""Helpers for the two-way tests: an HTTP provider that posts inbound messages (and
receipts), owned numbers, the tenant's inbound webhook."""

from __future__ import annotations

import json
from typing import Any

import httpx

from providers.http import SIGNATURE_HEADER, signature
from tests import support

SECRET = "agg-inbound-secret"
OUR_NUMBER = "+14155550100"
OTHER_NUMBER = "+14155550199"
HANDSET = "+447911123456"


async def http_provider(api: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await api.put(
        "/v1/admin/providers/agg",
        json={"kind": "http", "config": {"url": "http://127.0.0.1:9/", "dlr_secret": SECRET}},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text


async def own(
    api: httpx.AsyncClient, admin_headers: dict[str, str], tenant: support.TenantHandle, number: str
) -> None:
    response = await api.post(
        f"/v1/admin/tenants/{tenant.id}/numbers", json={"number": number}, headers=admin_headers
    )
    assert response.status_code == 201, response.text


async def configure(
    api: httpx.AsyncClient,
    admin_headers: dict[str, str],
    tenant: support.TenantHandle,
    **fields: Any,
) -> dict[str, Any]:
    response = await api.patch(f"/v1/admin/tenants/{tenant.id}", json=fields, headers=admin_headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def inbound(
    api: httpx.AsyncClient,
    body: Any,
    *,
    secret: str = SECRET,
    provider: str = "agg",
) -> httpx.Response:
    """Inbound messages as the HTTP provider posts them, signed with ``secret``."""
    return await _signed(api, f"/v1/providers/{provider}/inbound", body, secret)


async def receipts(
    api: httpx.AsyncClient,
    body: Any,
    *,
    secret: str = SECRET,
    provider: str = "agg",
) -> httpx.Response:
    """Delivery receipts as the HTTP provider posts them, signed with ``secret``."""
    return await _signed(api, f"/v1/providers/{provider}/dlr", body, secret)


async def _signed(api: httpx.AsyncClient, path: str, body: Any, secret: str) -> httpx.Response:
    raw = json.dumps(body).encode()
    return await api.post(
        path,
        content=raw,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature(secret, raw)},
    )


async def text_in(
    api: httpx.AsyncClient, text: str, *, id: str, frm: str = HANDSET, to: str = OUR_NUMBER
) -> dict[str, Any]:
    """One inbound message from the HTTP peer; returns the webhook's answer."""
    response = await inbound(api, {"id": id, "from": frm, "to": to, "text": text})
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer
