"""The SMPP listener in the test's event loop (port 0 on loopback), and tenants with SMPP
credentials made through the admin API."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from jobs.scheduler import ProcrastinateScheduler
from smpp_server.server import Listener
from tests import support
from tests.smpp_server.esme import Esme


@pytest.fixture
async def listener(settings, pool) -> AsyncIterator[Listener]:
    # Re-reads accounts five times a second, so credential changes show quickly.
    server = Listener(settings, pool, scheduler=ProcrastinateScheduler(), refresh_seconds=0.2)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


@dataclass(frozen=True)
class SmppTenant:
    tenant: support.TenantHandle
    system_id: str
    password: str
    # The number it owns, which its ESMEs send from (E.164 without +, as SMPP writes it).
    source: str

    def esme(self, listener: Listener, **fields: Any) -> Esme:
        return Esme(
            listener.port, self.system_id, self.password, **{"source": self.source, **fields}
        )


# Each SMPP tenant's own number, none of tests/two_way.py's.
_numbers = itertools.count(200)


async def smpp_tenant(
    api: httpx.AsyncClient,
    admin_headers: dict[str, str],
    *,
    credit: int = 10_000_000,
    credentials: dict[str, Any] | None = None,
    **fields: Any,
) -> SmppTenant:
    tenant = await support.make_tenant(api, admin_headers, credit=credit, **fields)
    # What its ESME sends from: its own number (the default), and the sender ID "ACME"
    # where alphanumeric senders are taken.
    source = f"1415555{next(_numbers):04d}"
    await support.own_number(api, admin_headers, tenant, "+" + source)
    await support.register_sender(api, admin_headers, tenant, "ACME")
    issued = await api.post(
        f"/v1/admin/tenants/{tenant.id}/smpp-credentials",
        json=credentials or {},
        headers=admin_headers,
    )
    assert issued.status_code == 201, issued.text
    body = issued.json()
    return SmppTenant(tenant, body["system_id"], body["password"], source)
