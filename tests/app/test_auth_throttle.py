"""Key guessing is slowed down: too many failed authentications from one address get
429 for the rest of the window, even with a valid key, in every API process."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import httpx
import msgspec

from app.factory import create_app
from tests import support

LIMIT = 5


@contextlib.asynccontextmanager
async def api_process(settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API process of its own (its own app and pool) with a low failed-auth limit."""
    app = create_app(msgspec.structs.replace(settings, auth_failures_limit=LIMIT))
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield client


async def test_repeated_failed_auth_is_throttled_across_processes(settings, admin_headers, tenant):
    wrong = {"Authorization": "Bearer smsgw_000000000000_" + "x" * 43}
    async with api_process(settings) as api, api_process(settings) as other:
        for _ in range(LIMIT - 1):
            response = await api.get("/v1/balance", headers=wrong)
            support.assert_problem(response, 401, "unauthorized")
        # The last allowed failure comes through another process: the count is shared.
        support.assert_problem(await other.get("/v1/balance", headers=wrong), 401, "unauthorized")
        blocked = await other.get("/v1/balance", headers=tenant.headers)
        body = support.assert_problem(blocked, 429, "rate_limited")
        assert "failed authentication" in body["detail"]
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        # Admin endpoints share the same door: the first process learns of the block
        # at its next failure, then refuses even the right token.
        support.assert_problem(
            await api.get(f"/v1/admin/tenants/{tenant.id}", headers={"Authorization": "Bearer no"}),
            401,
            "unauthorized",
        )
        support.assert_problem(
            await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers),
            429,
            "rate_limited",
        )


async def test_successful_requests_are_never_counted(settings, tenant):
    async with api_process(settings) as api:
        for _ in range(LIMIT * 3):
            assert (await api.get("/v1/balance", headers=tenant.headers)).status_code == 200


async def test_console_sign_in_failures_count_towards_the_same_throttle(settings, tenant):
    async with api_process(settings) as api:
        form = await api.get("/console/sign-in")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf
        attempt = {"email": "owner@acme.example", "password": "guess", "csrf_token": csrf[1]}
        for _ in range(LIMIT):
            refused = await api.post("/console/sign-in", data=attempt)
            assert refused.status_code == 401
            assert "The email address or the password is not right." in refused.text
        blocked = await api.post("/console/sign-in", data=attempt)
        assert blocked.status_code == 429
        assert "Too many failed authentication attempts" in blocked.text
        assert 1 <= int(blocked.headers["Retry-After"]) <= 60
        # The API's door is closed to this address too, even with a valid key.
        support.assert_problem(
            await api.get("/v1/balance", headers=tenant.headers), 429, "rate_limited"
        )
