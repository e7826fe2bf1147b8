"""Exposure controls at the other doors (issue 25) and tenant suspension (issue 28): the
SMPP listener and the Twilio facade refuse by the same rules as REST, each in its own
vocabulary, holding nothing."""

from __future__ import annotations

import asyncio

from jobs.scheduler import ProcrastinateScheduler
from smpp_server.server import Listener
from tests import support
from tests.app.test_twilio_facade import assert_twilio_error, credentials
from tests.smpp_server import esme as e
from tests.smpp_server.conftest import smpp_tenant

run = asyncio.to_thread
GB_TO = "+447400123456"  # a UK mobile (libphonenumber: GB)
PRICE = 7_900


async def test_a_submit_sm_is_refused_by_geo_permissions_and_spend_caps(
    api, admin_headers, listener, conn
):
    tenant = await smpp_tenant(api, admin_headers)
    geo = await api.put(
        f"/v1/admin/tenants/{tenant.tenant.id}/geo-permissions",
        json={"countries": ["US"]},
        headers=admin_headers,
    )
    assert geo.status_code == 200, geo.text
    client = tenant.esme(listener)
    await run(client.bind)
    before = await support.stored(conn)
    status, _ = await run(client.submit, destination_addr=GB_TO[1:], text="hi")
    assert status == e.ESME_RINVDSTADR  # the ESME may not send there
    assert await support.stored(conn) == before
    capped = await api.patch(
        f"/v1/admin/tenants/{tenant.tenant.id}",
        json={"daily_spend_cap": PRICE},
        headers=admin_headers,
    )
    assert capped.status_code == 200, capped.text
    status, _ = await run(client.submit, destination_addr="14155552671", text="one")
    assert status == e.ESME_ROK
    status, _ = await run(client.submit, destination_addr="14155552671", text="two")
    assert status == 0x64  # ESME_RX_T_APPN: temporary, the day's cap is reached
    assert (await support.balance(api, tenant.tenant))["held"] == PRICE
    await run(client.unbind)
    assert await support.violations(conn) == []


async def test_the_twilio_facade_answers_with_twilios_codes(api, conn, admin_headers, tenant):
    sid, token = await credentials(api, admin_headers, tenant)
    await support.own_number(api, admin_headers, tenant, "+14155550100")
    url = f"/2010-04-01/Accounts/{sid}/Messages.json"
    form = {"From": "+14155550100", "Body": "hi"}
    geo = await api.put(
        f"/v1/admin/tenants/{tenant.id}/geo-permissions",
        json={"countries": ["US"]},
        headers=admin_headers,
    )
    assert geo.status_code == 200, geo.text
    refused = await api.post(url, data={**form, "To": GB_TO}, auth=(sid, token))
    assert_twilio_error(refused, 400, 21408)  # permission not enabled for the region
    capped = await api.patch(
        f"/v1/admin/tenants/{tenant.id}", json={"daily_spend_cap": 0}, headers=admin_headers
    )
    assert capped.status_code == 200, capped.text
    over = await api.post(url, data={**form, "To": support.VALID_TO}, auth=(sid, token))
    assert_twilio_error(over, 402, 402)
    assert await support.stored(conn) == support.NOTHING_STORED


async def _suspend(api, admin_headers, tenant_id: str) -> None:
    suspended = await api.put(
        f"/v1/admin/tenants/{tenant_id}/suspension",
        json={"reason": "unpaid invoice"},
        headers=admin_headers,
    )
    assert suspended.status_code == 200, suspended.text


async def test_a_suspended_tenants_binds_close_and_new_ones_are_refused(
    api, admin_headers, listener
):
    tenant = await smpp_tenant(api, admin_headers)
    client = tenant.esme(listener)
    await run(client.bind)
    await _suspend(api, admin_headers, tenant.tenant.id)
    # The listener's upkeep closes the bind, and a new one is refused.
    await run(client.read_until, lambda: client.unbound_by_smsc, 10)
    client.close()
    refused = tenant.esme(listener)
    assert await run(refused.bind_status) == e.ESME_RBINDFAIL
    refused.close()
    resumed = await api.delete(
        f"/v1/admin/tenants/{tenant.tenant.id}/suspension", headers=admin_headers
    )
    assert resumed.status_code == 200, resumed.text
    again = tenant.esme(listener)
    assert await run(again.bind_status) == e.ESME_ROK
    status, _ = await run(again.submit, destination_addr="14155552671", text="back")
    assert status == e.ESME_ROK
    await run(again.unbind)


async def test_a_bind_still_open_when_its_tenant_is_suspended_has_its_submits_refused(
    api, admin_headers, settings, pool, conn
):
    # Upkeep once an hour: the bind outlives the suspension for this test.
    slow = Listener(settings, pool, scheduler=ProcrastinateScheduler(), refresh_seconds=3600)
    await slow.start("127.0.0.1", 0)
    try:
        tenant = await smpp_tenant(api, admin_headers)
        client = tenant.esme(slow)
        await run(client.bind)
        await _suspend(api, admin_headers, tenant.tenant.id)
        before = await support.stored(conn)
        status, _ = await run(client.submit, destination_addr="14155552671", text="hi")
        assert status == e.ESME_RSUBMITFAIL
        assert await support.stored(conn) == before
        await run(client.unbind)
    finally:
        await slow.close()


async def test_the_twilio_facade_refuses_a_suspended_account(api, conn, admin_headers, tenant):
    sid, token = await credentials(api, admin_headers, tenant)
    await support.own_number(api, admin_headers, tenant, "+14155550100")
    await _suspend(api, admin_headers, tenant.id)
    refused = await api.post(
        f"/2010-04-01/Accounts/{sid}/Messages.json",
        data={"From": "+14155550100", "To": support.VALID_TO, "Body": "hi"},
        auth=(sid, token),
    )
    assert_twilio_error(refused, 403, 20005)  # "Account not active"
    assert await support.stored(conn) == support.NOTHING_STORED
