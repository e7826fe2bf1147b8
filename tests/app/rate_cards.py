"""Rate cards for tests: import a card through the admin API and put a tenant on it."""

from __future__ import annotations

from typing import Any

import httpx

from tests import support

US = support.VALID_TO  # +1 415...
UK_MOBILE = support.OTHER_TO  # +44 7911...
UK_LANDLINE = "+442071838750"
FRANCE = "+33612345678"  # covered by no card below

# The US at 1,000, the United Kingdom at 30,000 and its mobiles (447) at 35,000.
WORLD = """prefix,country,network,price
1,US,,1000
44,GB,,30000
447,GB,UK mobile,35000
"""


async def import_card(
    api: httpx.AsyncClient,
    admin_headers: dict[str, str],
    card: str,
    text: str,
    **params: Any,
) -> httpx.Response:
    return await api.post(
        f"/v1/admin/rate-cards/{card}/versions",
        content=text.encode(),
        params={k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()},
        headers={**admin_headers, "Content-Type": "text/csv"},
    )


async def put_on_card(
    api: httpx.AsyncClient, admin_headers: dict[str, str], tenant: support.TenantHandle, card: str
) -> None:
    response = await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"rate_card": card}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["rate_card"] == card


async def world_tenant(
    api: httpx.AsyncClient, admin_headers: dict[str, str], tenant: support.TenantHandle
) -> None:
    """``tenant`` on the card WORLD (imported now, version 1)."""
    imported = await import_card(api, admin_headers, "world", WORLD)
    assert imported.status_code == 201, imported.text
    await put_on_card(api, admin_headers, tenant, "world")
