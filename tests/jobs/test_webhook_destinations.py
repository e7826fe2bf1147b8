"""At delivery, the address a worker actually connects to is judged: a webhook whose host
is, or resolves to, a forbidden address never reaches it, fails at once with a reason
the tenant can read, and is not retried. The suite opens 127.0.0.1/32 only; receivers
on 127.0.0.2 stand in for an internal service (still loopback: no traffic leaves it)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from core import webhook_policy
from core.dispatch import DispatchConfig
from db import callbacks as callbacks_db
from jobs.callbacks import deliver_batch
from jobs.context import WorkerDeps
from jobs.scheduler import ProcrastinateScheduler
from jobs.upstreams import DatabaseUpstreams
from jobs.webhook_transport import Resolver, system_resolver, webhook_client
from tests import httpd, support, workers

TENANT_HOST = "hooks.tenant.test"


def resolving_to(address: str) -> Resolver:
    """A resolver in which TENANT_HOST has ``address`` (the system's getaddrinfo reads
    it), standing in for a tenant's DNS: no /etc/hosts to edit."""

    async def resolve(host: str, port: int) -> list[str]:
        return await system_resolver(address if host == TENANT_HOST else host, port)

    return resolve


async def _callback(conn, message_id):
    cursor = await conn.execute(
        "SELECT attempts, last_status_code, last_error, delivered_at, abandoned_at,"
        " next_attempt_at FROM callbacks WHERE message_id = %s",
        (message_id,),
    )
    return await cursor.fetchone()


async def _canceled_with_callback(api, tenant, url) -> str:
    """A message whose one status callback ('canceled') is due now."""
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    sent = await support.send(api, tenant, callback_url=url, send_at=later)
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["id"]
    canceled = await api.post(f"/v1/messages/{message_id}/cancel", headers=tenant.headers)
    assert canceled.status_code == 200, canceled.text
    return message_id


@contextlib.asynccontextmanager
async def _sender(settings, pool, resolve: Resolver) -> AsyncIterator[WorkerDeps]:
    """What a worker's callbacks sender has: its one webhook client among them."""
    policy = webhook_policy.policy(settings.webhook_allowed_networks)
    async with webhook_client(policy, resolve=resolve) as http:
        yield WorkerDeps(
            settings=settings,
            pool=pool,
            upstreams=DatabaseUpstreams(settings, sink=_no_receipts),
            scheduler=ProcrastinateScheduler(),
            dispatch=DispatchConfig(),
            http=http,
        )


async def _deliver_once(settings, pool, resolve: Resolver) -> int:
    async with _sender(settings, pool, resolve) as deps:
        return await deliver_batch(deps)


async def _enqueue(conn, tenant, url: str, message_id: uuid.UUID) -> None:
    """A status callback written straight into the outbox (as one stored earlier)."""
    await callbacks_db.enqueue(
        conn,
        tenant_id=uuid.UUID(tenant.id),
        message_id=message_id,
        url=url,
        payload={"id": str(message_id), "status": "delivered"},
        kind="status",
    )


async def _no_receipts(*_: object) -> None:
    return None


async def test_a_name_resolving_to_a_forbidden_address_never_gets_a_request(
    api, conn, pool, settings, tenant
):
    with httpd.serve(host="127.0.0.2") as internal:
        port = internal.url.split(":")[2].split("/")[0]
        # Accepted: a host name is judged where it is connected to, not at accept.
        message_id = await _canceled_with_callback(
            api, tenant, f"http://{TENANT_HOST}:{port}/internal-admin"
        )
        assert await _deliver_once(settings, pool, resolving_to("127.0.0.2")) == 1
        assert internal.received == []
    row = await _callback(conn, message_id)
    assert row["attempts"] == 1
    assert row["delivered_at"] is None
    assert row["abandoned_at"] is not None
    assert row["next_attempt_at"] is None  # never retried
    assert row["last_status_code"] is None
    assert row["last_error"] == (
        f"destination not allowed: 127.0.0.2 is loopback ({TENANT_HOST} resolves to it)"
    )


async def test_the_same_name_resolving_to_an_allowed_address_is_delivered(
    api, conn, pool, settings, tenant
):
    # The control of the test above: only the address the name resolves to differs.
    with httpd.serve() as allowed:
        port = allowed.url.split(":")[2].split("/")[0]
        message_id = await _canceled_with_callback(
            api, tenant, f"http://{TENANT_HOST}:{port}/hooks/sms"
        )
        assert await _deliver_once(settings, pool, resolving_to("127.0.0.1")) == 1
        assert [json.loads(r.body)["status"] for r in allowed.received] == ["canceled"]
        assert allowed.received[0].headers["host"] == f"{TENANT_HOST}:{port}"
    row = await _callback(conn, message_id)
    assert row["delivered_at"] is not None
    assert row["last_status_code"] == 200


async def test_a_name_with_one_forbidden_address_among_allowed_ones_is_refused(
    api, conn, pool, settings, tenant
):
    async def rebinding(host: str, port: int) -> list[str]:
        # The allowed address first: a check of the first answer only would connect.
        return ["127.0.0.1", "127.0.0.2"] if host == TENANT_HOST else []

    with httpd.serve() as allowed:
        port = allowed.url.split(":")[2].split("/")[0]
        message_id = await _canceled_with_callback(api, tenant, f"http://{TENANT_HOST}:{port}/x")
        assert await _deliver_once(settings, pool, rebinding) == 1
        assert allowed.received == []
    row = await _callback(conn, message_id)
    assert row["abandoned_at"] is not None
    assert "127.0.0.2 is loopback" in row["last_error"]


async def test_the_worker_refuses_a_stored_literal_internal_url_at_connect_time(
    api, conn, settings, tenant
):
    """A URL already in the outbox (stored before this check, or by a path that did not
    check it) meets the worker's own client, as `smsgw worker` builds it."""
    with httpd.serve(host="127.0.0.2") as internal:
        message_id = uuid.uuid4()
        await _enqueue(conn, tenant, internal.url, message_id)
        async with workers.in_process(settings, queues=["callbacks"]):

            async def abandoned():
                row = await _callback(conn, message_id)
                return row if row["abandoned_at"] is not None else None

            row = await workers.eventually(abandoned, timeout=30)
        assert internal.received == []
    assert row["attempts"] == 1
    assert row["next_attempt_at"] is None
    assert row["last_error"] == "destination not allowed: 127.0.0.2 is loopback"


async def test_a_forbidden_literal_url_is_refused_each_time_it_is_met(
    api, conn, pool, settings, tenant
):
    # The client keeps its judgement of a URL: the second callback to the same URL is
    # refused from it, as the first was.
    with httpd.serve(host="127.0.0.2") as internal:
        message_ids = [uuid.uuid4(), uuid.uuid4()]
        for message_id in message_ids:
            await _enqueue(conn, tenant, internal.url, message_id)
        assert await _deliver_once(settings, pool, system_resolver) == 2
        assert internal.received == []
    for message_id in message_ids:
        row = await _callback(conn, message_id)
        assert row["abandoned_at"] is not None
        assert row["last_error"] == "destination not allowed: 127.0.0.2 is loopback"


async def test_a_cookie_one_tenants_endpoint_sets_is_not_sent_with_anothers_callbacks(
    api, conn, pool, settings, admin_headers
):
    # Two tenants of one integration platform: the same host, their own paths. The
    # worker's client is shared by every tenant's webhooks.
    first = await support.make_tenant(api, admin_headers, credit=1_000_000)
    second = await support.make_tenant(api, admin_headers, credit=1_000_000)
    with httpd.serve() as platform:
        platform.answer_headers = {"Set-Cookie": "session=first-tenants-secret; Path=/"}
        port = platform.url.split(":")[2].split("/")[0]
        async with _sender(settings, pool, resolving_to("127.0.0.1")) as deps:
            for tenant in (first, second):
                await _canceled_with_callback(
                    api, tenant, f"http://{TENANT_HOST}:{port}/hooks/{tenant.id}"
                )
                assert await deliver_batch(deps) == 1
        assert [r.path for r in platform.received] == [f"/hooks/{first.id}", f"/hooks/{second.id}"]
        assert "cookie" not in platform.received[1].headers


async def test_a_redirect_is_not_followed(api, conn, pool, settings, tenant):
    with httpd.serve() as target, httpd.serve(lambda n: (307, 0.0)) as redirecting:
        redirecting.answer_headers = {"Location": target.url}
        message_id = await _canceled_with_callback(api, tenant, redirecting.url)
        assert await _deliver_once(settings, pool, system_resolver) == 1
        assert len(redirecting.received) == 1
        assert target.received == []
    row = await _callback(conn, message_id)
    assert row["last_status_code"] == 307
    assert row["last_error"] == "HTTP 307 (redirects are not followed)"
    assert row["delivered_at"] is None
    assert row["next_attempt_at"] is not None  # an answer like any failure: retried
