"""A route edited in place (`PATCH /v1/admin/routes/{id}`) is what dispatch routes by:
switched off, its traffic goes to the next route; its priority changed, the order of the
routes follows."""

from __future__ import annotations

from tests import support, workers


async def _route(api, admin_headers, name: str, priority: int) -> int:
    put = await api.put(
        f"/v1/admin/providers/{name}", json={"kind": "simulator"}, headers=admin_headers
    )
    assert put.status_code == 200, put.text
    added = await api.post(
        "/v1/admin/routes", json={"provider": name, "priority": priority}, headers=admin_headers
    )
    assert added.status_code == 201, added.text
    return int(added.json()["id"])


async def _send_one(api, settings, tenant) -> str:
    """A message sent by a worker started now (it reads the routes as they are); the
    provider that took it."""
    sent = await support.send(api, tenant)
    assert sent.status_code == 202, sent.text
    async with workers.in_process(settings):

        async def sent_or_later():
            m = await support.message(api, tenant, sent.json()["id"])
            return m if m["status"] in ("sent", "delivered", "undelivered", "failed") else None

        done = await workers.eventually(sent_or_later)
    assert done["status"] in ("sent", "delivered"), done
    return str(done["provider"])


async def test_dispatch_follows_a_route_edited_in_place(api, conn, settings, admin_headers, tenant):
    first = await _route(api, admin_headers, "first", 1)
    second = await _route(api, admin_headers, "second", 2)
    assert await _send_one(api, settings, tenant) == "first"

    async def patch(route: int, **body: object) -> None:
        edited = await api.patch(f"/v1/admin/routes/{route}", json=body, headers=admin_headers)
        assert edited.status_code == 200, edited.text
        assert edited.json()["id"] == route

    await patch(first, enabled=False)
    assert await _send_one(api, settings, tenant) == "second"
    await patch(first, enabled=True, priority=3)
    assert await _send_one(api, settings, tenant) == "second"
    await patch(second, priority=5)
    assert await _send_one(api, settings, tenant) == "first"
    assert await support.violations(conn) == []
