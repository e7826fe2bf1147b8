"""submit_sm is priced by destination like every other door: the tenant's card, and
an uncovered destination refused as an invalid destination with nothing held."""

from __future__ import annotations

import asyncio

from tests import support
from tests.app.rate_cards import world_tenant
from tests.smpp_server import esme as e
from tests.smpp_server.conftest import smpp_tenant

run = asyncio.to_thread


async def test_a_submit_is_priced_by_its_destination(api, admin_headers, listener, conn):
    tenant = await smpp_tenant(api, admin_headers)
    await world_tenant(api, admin_headers, tenant.tenant)
    client = tenant.esme(listener)
    await run(client.bind)
    status, message_id = await run(
        client.submit, destination_addr="447911123456", source_addr="ACME", text="hi"
    )
    assert status == e.ESME_ROK
    message = await support.message(api, tenant.tenant, message_id)
    assert (message["price"], message["rate_card"], message["rate_prefix"]) == (
        35_000,
        "world",
        "447",
    )
    before = await support.stored(conn)
    status, _ = await run(
        client.submit, destination_addr="33612345678", source_addr="ACME", text="hi"
    )
    assert status == 0x0B  # ESME_RINVDSTADR: nothing is sold to that destination
    assert await support.stored(conn) == before
    assert (await support.balance(api, tenant.tenant))["held"] == 35_000
    await run(client.unbind)
    assert await support.violations(conn) == []
