"""Binding to smsgw over SMPP 3.4 with smpplib: credentials from the admin API, the three
kinds of bind, wrong passwords, the per-tenant bind limit (across listener processes),
the IP allow-list, and the session PDUs (enquire_link, unbind, generic_nack)."""

from __future__ import annotations

import asyncio
import struct

from db.pool import open_pool
from jobs.scheduler import ProcrastinateScheduler
from smpp_server.server import Listener
from tests import support
from tests.smpp_server import esme as e
from tests.smpp_server.conftest import smpp_tenant
from tests.workers import eventually

run = asyncio.to_thread


async def test_credentials_are_issued_once_and_shown_without_the_password(api, admin_headers):
    tenant = await smpp_tenant(api, admin_headers)
    assert 1 <= len(tenant.system_id) <= 15
    assert len(tenant.password) == 8
    shown = await api.get(
        f"/v1/admin/tenants/{tenant.tenant.id}/smpp-credentials", headers=admin_headers
    )
    assert shown.status_code == 200
    body = shown.json()
    assert body["system_id"] == tenant.system_id
    assert body["binds"] == 0
    assert body["max_binds"] == 4
    assert body["allowed_networks"] is None
    assert tenant.password not in shown.text
    # A chosen system_id is the tenant's alone, and SMPP's limits are enforced.
    other = await smpp_tenant(api, admin_headers, credentials={"system_id": "acme-bulk"})
    assert other.system_id == "acme-bulk"
    clash = await api.post(
        f"/v1/admin/tenants/{tenant.tenant.id}/smpp-credentials",
        json={"system_id": "acme-bulk"},
        headers=admin_headers,
    )
    assert clash.status_code == 409
    too_long = await api.post(
        f"/v1/admin/tenants/{tenant.tenant.id}/smpp-credentials",
        json={"system_id": "x" * 16, "max_binds": 0, "allowed_networks": ["not-an-ip"]},
        headers=admin_headers,
    )
    assert too_long.status_code == 422
    fields = {error["field"] for error in too_long.json()["errors"]}
    assert fields == {"system_id", "max_binds", "allowed_networks[0]"}
    missing = await api.get(
        "/v1/admin/tenants/00000000-0000-0000-0000-000000000000/smpp-credentials",
        headers=admin_headers,
    )
    assert missing.status_code == 404


async def test_each_kind_of_bind_does_what_it_may(api, admin_headers, listener):
    tenant = await smpp_tenant(api, admin_headers)
    transmitter = tenant.esme(listener, bind_as="transmitter")
    receiver = tenant.esme(listener, bind_as="receiver")
    transceiver = tenant.esme(listener)
    for client in (transmitter, receiver, transceiver):
        await run(client.bind)
    shown = await api.get(
        f"/v1/admin/tenants/{tenant.tenant.id}/smpp-credentials", headers=admin_headers
    )
    assert shown.json()["binds"] == 3
    sent = {"destination_addr": "14155552671", "text": "hi"}
    assert (await run(transmitter.submit, **sent))[0] == e.ESME_ROK
    assert (await run(transceiver.submit, **sent))[0] == e.ESME_ROK
    # A receiver may not submit: smpplib would not even send it, so it goes raw.
    await run(
        receiver.send_command,
        "submit_sm",
        77,
        destination_addr="14155552671",
        short_message=b"x",
    )
    assert await run(receiver.read_answer, 77) == ("submit_sm_resp", e.ESME_RINVBNDSTS)
    for client in (transmitter, receiver, transceiver):
        await run(client.unbind)


async def test_a_wrong_password_or_unknown_system_id_is_refused(api, admin_headers, listener):
    tenant = await smpp_tenant(api, admin_headers)
    wrong = e.Esme(listener.port, tenant.system_id, "wrong")
    assert await run(wrong.bind_status) == e.ESME_RINVPASWD
    # The listener closes the connection after a refused bind.
    assert await run(wrong.closed_by_peer)
    unknown = e.Esme(listener.port, "nobody", tenant.password)
    assert await run(unknown.bind_status) == e.ESME_RINVPASWD
    # Longer than SMPP 3.4 allows: no account can have it, so it is a wrong password too.
    long = e.Esme(listener.port, tenant.system_id, "123456789")
    assert await run(long.bind_status) == e.ESME_RINVPASWD
    for client in (wrong, unknown, long):
        client.close()
    right = tenant.esme(listener)
    assert await run(right.bind_status) == e.ESME_ROK
    await run(right.unbind)


async def test_the_bind_limit_holds_across_listener_processes(
    api, admin_headers, listener, settings, pool
):
    tenant = await smpp_tenant(api, admin_headers, credentials={"max_binds": 2})
    # A second listener with its own slots connection: another `smsgw smpp` process.
    other = Listener(settings, pool, scheduler=ProcrastinateScheduler())
    await other.start("127.0.0.1", 0)
    try:
        first, second = tenant.esme(listener), tenant.esme(listener, bind_as="receiver")
        assert await run(first.bind_status) == e.ESME_ROK
        assert await run(second.bind_status) == e.ESME_ROK
        third = tenant.esme(other)
        assert await run(third.bind_status) == e.ESME_RBINDFAIL
        third.close()
        # A bind that ends frees its slot, whichever listener held it.
        await run(first.unbind)
        again = tenant.esme(other)
        assert await run(again.bind_status) == e.ESME_ROK
        # Raising the limit lets one more in at once.
        raised = await api.patch(
            f"/v1/admin/tenants/{tenant.tenant.id}/smpp-credentials",
            json={"max_binds": 3},
            headers=admin_headers,
        )
        assert raised.json()["binds"] == 2
        fourth = tenant.esme(listener)
        assert await run(fourth.bind_status) == e.ESME_ROK
        for client in (second, again, fourth):
            await run(client.unbind)
    finally:
        await other.close()


async def test_binds_come_only_from_allowed_networks(api, admin_headers, listener):
    tenant = await smpp_tenant(
        api, admin_headers, credentials={"allowed_networks": ["192.0.2.0/24", "2001:db8::/32"]}
    )
    outside = tenant.esme(listener)
    assert await run(outside.bind_status) == e.ESME_RBINDFAIL
    outside.close()
    opened = await api.patch(
        f"/v1/admin/tenants/{tenant.tenant.id}/smpp-credentials",
        json={"allowed_networks": ["192.0.2.0/24", "127.0.0.1"]},
        headers=admin_headers,
    )
    assert opened.json()["allowed_networks"] == ["192.0.2.0/24", "127.0.0.1/32"]
    inside = tenant.esme(listener)
    assert await run(inside.bind_status) == e.ESME_ROK
    await run(inside.unbind)


async def test_enquire_link_unbind_and_generic_nack(api, admin_headers, listener):
    tenant = await smpp_tenant(api, admin_headers)
    client = tenant.esme(listener)
    await run(client.bind)
    await run(client.send_raw, 0x00000015, b"", 11)
    assert await run(client.read_answer, 11) == ("enquire_link_resp", e.ESME_ROK)
    # An unknown command, and a submit_sm whose body ends before its fields do.
    await run(client.send_raw, 0x00000099, b"", 12)
    assert await run(client.read_answer, 12) == ("generic_nack", e.ESME_RINVCMDID)
    await run(client.send_raw, 0x00000004, b"\x00\x01\x01141", 13)
    assert await run(client.read_answer, 13) == ("generic_nack", e.ESME_RINVCMDLEN)
    # A second bind on a bound connection.
    await run(client.send_command, "bind_transceiver", 14, system_id=tenant.system_id, password="x")
    assert await run(client.read_answer, 14) == ("bind_transceiver_resp", e.ESME_RALYBND)
    # The session is still good after all that.
    assert (await run(client.submit, destination_addr="14155552671", text="ok"))[0] == 0
    await run(client.send_raw, 0x00000006, b"", 15)
    assert await run(client.read_answer, 15) == ("unbind_resp", e.ESME_ROK)
    assert await run(client.closed_by_peer)
    client.close()


async def test_a_new_password_or_a_deleted_account_closes_the_binds(api, admin_headers, listener):
    tenant = await smpp_tenant(api, admin_headers)
    client = tenant.esme(listener)
    await run(client.bind)
    rotated = await api.post(
        f"/v1/admin/tenants/{tenant.tenant.id}/smpp-credentials", json={}, headers=admin_headers
    )
    assert rotated.status_code == 201
    new_password = rotated.json()["password"]
    assert rotated.json()["system_id"] == tenant.system_id
    # The listener unbinds the bind made with the old password.
    await run(client.read_until, lambda: client.unbound_by_smsc, 10)
    client.close()
    old = tenant.esme(listener)
    assert await run(old.bind_status) == e.ESME_RINVPASWD
    old.close()
    fresh = e.Esme(listener.port, tenant.system_id, new_password)
    assert await run(fresh.bind_status) == e.ESME_ROK
    deleted = await api.delete(
        f"/v1/admin/tenants/{tenant.tenant.id}/smpp-credentials", headers=admin_headers
    )
    assert deleted.status_code == 204
    await run(fresh.read_until, lambda: fresh.unbound_by_smsc, 10)
    fresh.close()
    gone = tenant.esme(listener)
    assert await run(gone.bind_status) == e.ESME_RINVPASWD
    gone.close()


async def test_a_pdu_with_an_impossible_length_is_nacked_and_the_link_closed(
    api, admin_headers, listener
):
    tenant = await smpp_tenant(api, admin_headers)
    client = tenant.esme(listener)
    await run(client.bind)
    # command_length 8: shorter than a PDU header, so nothing after it can be framed.
    await run(client._client._socket.sendall, struct.pack("!IIII", 8, 0x00000004, 0, 21))
    assert await run(client.read_answer, 21) == ("generic_nack", e.ESME_RINVCMDLEN)
    assert await run(client.closed_by_peer)
    client.close()


async def test_while_the_database_is_unreachable_esmes_hear_esme_rsyserr(
    api, admin_headers, settings, conn
):
    tenant = await smpp_tenant(api, admin_headers)
    # A listener of its own, whose pool then loses the database.
    own_pool = await open_pool(settings.database_url, min_size=1, max_size=4)
    server = Listener(settings, own_pool, scheduler=ProcrastinateScheduler())
    await server.start("127.0.0.1", 0)
    try:
        client = tenant.esme(server)
        await run(client.bind)
        await own_pool.close()
        answer = await run(client.submit, destination_addr="14155552671", text="lost?")
        assert answer == (e.ESME_RSYSERR, "")
        assert await support.stored(conn) == support.NOTHING_STORED
        later = tenant.esme(server)
        assert await run(later.bind_status) == e.ESME_RSYSERR
        later.close()
        client.close()
    finally:
        await server.close()


async def test_the_bind_limit_survives_losing_the_slots_connection(
    api, admin_headers, listener, conn
):
    """The slots are locks of one connection; if the database drops it (a restart, an
    operator's pg_terminate_backend), the listener takes its binds' slots again."""
    tenant = await smpp_tenant(api, admin_headers, credentials={"max_binds": 1})
    first = tenant.esme(listener)
    assert await run(first.bind_status) == e.ESME_ROK
    query = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE application_name = 'smsgw-smpp-binds' AND datname = current_database()"
    )
    (old,) = await (await conn.execute(query)).fetchall()
    await conn.execute("SELECT pg_terminate_backend(%s)", (old["pid"],))

    async def reconnected() -> bool:
        rows = await (await conn.execute(query)).fetchall()
        return bool(rows) and rows[0]["pid"] != old["pid"]

    async def bound() -> bool:
        shown = await api.get(
            f"/v1/admin/tenants/{tenant.tenant.id}/smpp-credentials", headers=admin_headers
        )
        return shown.json()["binds"] == 1

    await eventually(reconnected)
    await eventually(bound)
    second = tenant.esme(listener)
    assert await run(second.bind_status) == e.ESME_RBINDFAIL
    second.close()
    # The first bind never noticed: it still submits.
    assert (await run(first.submit, destination_addr="14155552671", text="still here"))[0] == 0
    await run(first.unbind)


async def test_the_listener_stops_even_when_a_background_loop_missed_its_cancel(settings, pool):
    """Seen once: the upkeep loop went on after close() cancelled it (a cancel lost in a
    race inside a wait), and the shutdown waited for it for good."""
    server = Listener(settings, pool, scheduler=ProcrastinateScheduler(), refresh_seconds=0.2)
    await server.start("127.0.0.1", 0)
    cancels = 0

    async def loses_its_first_cancel() -> None:
        nonlocal cancels
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancels += 1
                if cancels > 1:
                    raise

    server._background.append(asyncio.create_task(loses_its_first_cancel()))
    await asyncio.sleep(0)  # it is in its loop
    async with asyncio.timeout(30):  # a deadline for the wait, not a measurement
        await server.close()
    assert cancels == 2
    assert all(task.done() for task in server._background)
