"""The faults, and one run of the system per fault: fresh database, API, two workers, the
aggregator and the callback endpoint; load for a couple of seconds; the fault, injected
while the load flows; load again; then, with every fault healed, a wait until each
accepted message is delivered and its tenant has heard so (or a deadline), and the
audit (audit.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from psycopg.rows import dict_row

from core import tenants as core_tenants
from core import upstreams
from tests.faults import audit as audit_mod
from tests.faults.audit import Outcome
from tests.faults.gateway import Cluster, Gateway
from tests.faults.load import Load, Tenant
from tests.faults.peers import Aggregator, CallbackEndpoint

WORKERS = 2
CREDIT = 1_000_000_000  # 1,000 USD each: far more than a scenario sends
TIERS: tuple[Literal["standard", "premium", "vip"], ...] = ("standard", "premium", "vip")
LOAD_BEFORE_SECONDS = 1.5
LOAD_AFTER_SECONDS = 1.0
DRAIN_SECONDS = 90.0
CALLBACK_GRACE_SECONDS = 8.0


@dataclass
class Stage:
    """What a fault can reach while the load flows."""

    cluster: Cluster
    dbname: str
    gateway: Gateway
    aggregator: Aggregator
    callbacks: CallbackEndpoint
    load: Load
    outcome: Outcome

    def note(self, text: str) -> None:
        self.outcome.notes.append(text)

    def fact(self, name: str, value: int) -> None:
        self.outcome.facts.setdefault(name, []).append(value)

    async def mid_batch(self, timeout: float = 10.0) -> int:
        """Waits for a moment when workers hold claimed messages (a batch in flight);
        returns how many."""
        deadline = time.monotonic() + timeout
        async with await psycopg.AsyncConnection.connect(
            self.gateway.db_url, autocommit=True
        ) as conn:
            while time.monotonic() < deadline:
                cursor = await conn.execute(
                    "SELECT count(*) FROM messages WHERE status = 'sending'"
                )
                row = await cursor.fetchone()
                if row is not None and row[0]:
                    return int(row[0])
                await asyncio.sleep(0.01)
        return 0

    async def mid_request(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        # Polled: requests start and end by the hundred; an event per change would cost
        # the load more than a check per millisecond for the moment of one kill.
        while time.monotonic() < deadline and not self.load.result.in_flight:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        return self.load.result.in_flight


Fault = Callable[[Stage], Awaitable[None]]


async def kill_workers(stage: Stage) -> None:
    """SIGKILL every worker mid-batch, then one of the two; each restarted a second later."""
    for count in (None, 1):
        sending = await stage.mid_batch()
        killed = await stage.gateway.kill_workers(count)
        stage.fact("sending_at_kill", sending)
        stage.note(f"SIGKILL {killed} worker(s) with {sending} messages sending")
        await asyncio.sleep(1.0)
        await stage.gateway.start_workers(killed)
        await asyncio.sleep(1.5)


async def kill_api(stage: Stage) -> None:
    """SIGKILL the API (granian and its worker) with requests in flight; restart it."""
    in_flight = await stage.mid_request()
    await stage.gateway.kill_api()
    stage.fact("in_flight_at_kill", in_flight)
    stage.note(f"SIGKILL the API with {in_flight} request(s) in flight")
    await asyncio.sleep(1.0)
    started = time.monotonic()
    await stage.gateway.start_api()
    stage.note(f"API back after {time.monotonic() - started + 1.0:.1f} s")


async def restart_postgres(stage: Stage) -> None:
    """`pg_ctl restart -m fast`. Usually well under a second; now and then a minute,
    when a gateway process has left a connection attempt half-open on the server that
    is shutting down: PostgreSQL then waits authentication_timeout (60 s) for its
    startup packet before it finishes stopping. The note says how long it took."""
    started = time.monotonic()
    await stage.cluster.restart()
    stage.note(f"pg_ctl restart -m fast took {time.monotonic() - started:.1f} s")


async def refuse_connections(stage: Stage) -> None:
    await stage.cluster.refuse_connections(stage.dbname, 4.0)
    stage.note("4 s without database connections (all sessions terminated)")


async def provider_trouble(stage: Stage) -> None:
    stage.aggregator.set_mode("flaky")
    await asyncio.sleep(3.0)
    stage.aggregator.set_mode("hang")
    await asyncio.sleep(3.0)
    stage.aggregator.set_mode("ok")
    refused = stage.aggregator.refused
    stage.fact("provider_refused", refused["503"])
    stage.fact("provider_refused", refused["hang"])
    stage.note(f"aggregator refused {dict(refused)}")


async def callback_trouble(stage: Stage) -> None:
    stage.callbacks.set_mode("fail")
    await asyncio.sleep(3.0)
    stage.callbacks.set_mode("hang")
    await asyncio.sleep(3.0)
    stage.callbacks.set_mode("ok")
    refused = stage.callbacks.refused
    stage.fact("callbacks_refused", refused["500"])
    stage.fact("callbacks_refused", refused["hang"])
    stage.note(f"callback endpoint refused {dict(refused)}")


async def everything(stage: Stage) -> None:
    """All of the above, overlapping."""
    stage.aggregator.set_mode("flaky")
    stage.callbacks.set_mode("fail")
    await asyncio.sleep(0.5)
    sending = await stage.mid_batch()
    await asyncio.gather(stage.gateway.kill_workers(), stage.gateway.kill_api())
    stage.fact("sending_at_kill", sending)
    stage.note(f"SIGKILL API and workers with {sending} messages sending")
    await stage.cluster.restart()
    await asyncio.gather(stage.gateway.start_workers(WORKERS), stage.gateway.start_api())
    await asyncio.sleep(1.0)
    stage.aggregator.set_mode("hang")
    stage.callbacks.set_mode("hang")
    await stage.cluster.refuse_connections(stage.dbname, 3.0)
    stage.aggregator.set_mode("ok")
    stage.callbacks.set_mode("ok")
    stage.note("provider 503s then hangs, callbacks 500 then hang, 3 s without connections")


SCENARIOS: dict[str, tuple[str, Fault]] = {
    "workers": ("SIGKILL workers mid-batch", kill_workers),
    "api": ("SIGKILL API mid-request", kill_api),
    "pg_restart": ("PostgreSQL restart (fast)", restart_postgres),
    "pg_outage": ("4 s connection outage", refuse_connections),
    "provider": ("provider 50% 503, hang, ok", provider_trouble),
    "callbacks": ("callbacks 500, hang, ok", callback_trouble),
    "everything": ("all of them together", everything),
}


async def _setup(db_url: str, aggregator: Aggregator) -> list[Tenant]:
    """The aggregator as the only route, and a tenant per tier with credit: written with
    the gateway's own operations before any of its processes start, so that every
    worker routes to the aggregator from its first turn."""
    tenants = []
    async with (
        await psycopg.AsyncConnection.connect(
            db_url, autocommit=True, row_factory=dict_row
        ) as conn,
        conn.transaction(),
    ):
        await upstreams.put_provider(
            conn,
            name="agg",
            kind="http",
            config={
                "url": aggregator.url,
                "api_key": aggregator.api_key,
                "dlr_secret": aggregator.dlr_secret,
                "concurrency": 20,
                "timeout_seconds": 1.0,
            },
            mps=None,
            enabled=True,
        )
        await upstreams.add_route(
            conn,
            prefix="+",
            tier=None,
            provider="agg",
            priority=100,
            cost_per_segment=1000,
            enabled=True,
        )
        for tier in TIERS:
            tenant, key = await core_tenants.create_tenant(
                conn, name=tier, tier=tier, rate_limit_mps=None
            )
            await core_tenants.add_credit(
                conn, tenant_id=tenant.id, amount=CREDIT, reference="chaos"
            )
            tenants.append(Tenant(id=str(tenant.id), api_key=key.api_key, tier=tier))
    return tenants


async def _drain(db_url: str, load: Load, callbacks: CallbackEndpoint, outcome: Outcome) -> None:
    """Until every accepted message is delivered, then until the tenant has heard of
    each delivery (its 'delivered' callback answered), for at most CALLBACK_GRACE_SECONDS:
    a callback that a killed worker had claimed waits for its claim to lapse (30 s), and
    is counted as pending when its row shows so."""
    wanted = set(load.result.accepted.values())
    hooked = wanted & load.result.with_callbacks
    deadline = time.monotonic() + DRAIN_SECONDS
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        while True:
            cursor = await conn.execute("SELECT id::text FROM messages WHERE status = 'delivered'")
            if wanted <= {row[0] for row in await cursor.fetchall()}:
                outcome.drained = True
                break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        deadline = min(deadline, time.monotonic() + CALLBACK_GRACE_SECONDS)
        # Polled: the endpoint's threads record what they hear.
        while hooked - callbacks.heard("delivered") and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.25)
        unheard = sorted(hooked - callbacks.heard("delivered"))
        cursor = await conn.execute(
            "SELECT message_id::text FROM callbacks"
            " WHERE message_id = ANY(%s::uuid[]) AND payload->>'status' = 'delivered'"
            " AND next_attempt_at IS NOT NULL AND attempts > 0",
            (unheard,),
        )
        pending = {row[0] for row in await cursor.fetchall()}
    outcome.callbacks_pending = len(pending)
    outcome.callbacks_missing = [m for m in unheard if m not in pending]


async def run(cluster: Cluster, key: str, logs: Path) -> Outcome:
    """One scenario from start to audit."""
    title, fault = SCENARIOS[key]
    outcome = Outcome(fault=title)
    dbname = await cluster.fresh(f"chaos_{key}")
    gateway = Gateway(cluster.url(dbname), logs, key)
    with Aggregator().running() as aggregator, CallbackEndpoint().running() as callbacks:
        clock = time.monotonic()
        try:
            tenants = await _setup(gateway.db_url, aggregator)
            await asyncio.gather(gateway.start_api(), gateway.start_workers(WORKERS))
            await gateway.wait_workers(WORKERS)
            aggregator.dlr_url = f"{gateway.base}/v1/providers/agg/dlr"
            load = Load(gateway.base, tenants, callback_url=callbacks.url)
            stage = Stage(cluster, dbname, gateway, aggregator, callbacks, load, outcome)
            load.start()
            started = time.monotonic()
            await asyncio.sleep(LOAD_BEFORE_SECONDS)
            await fault(stage)
            await asyncio.sleep(LOAD_AFTER_SECONDS)
            await load.stop()
            stopped = time.monotonic()
            await _drain(gateway.db_url, load, callbacks, outcome)
            drained = time.monotonic()
            outcome.crashed = gateway.crashed()
            restarts = gateway.logged("worker.loop_stopped") + gateway.logged(
                "worker.database_lost"
            )
            if restarts:
                outcome.notes.append(f"workers restarted their job loop {restarts} time(s)")
            await audit_mod.audit(outcome, gateway.db_url, gateway.base, tenants, load.result)
            receipts = aggregator.receipt_stats
            outcome.receipt_errors = audit_mod.errors_of(receipts.outcomes)
            outcome.unclean += aggregator.receipt_unclean
            outcome.hangs += receipts.outcomes["timeout"]
            outcome.max_client_wait = max(outcome.max_client_wait, receipts.max_wait)
            outcome.upstream_duplicates = aggregator.upstream_duplicates()
            outcome.notes.append(
                f"start {started - clock:.1f} s, load {stopped - started:.1f} s, "
                f"drain {drained - stopped:.1f} s; "
                f"{outcome.upstream_duplicates} message(s) resent upstream (at-least-once), "
                f"{outcome.callbacks_pending} callback(s) waiting for a lapsed claim"
            )
        finally:
            await gateway.stop()
    if not outcome.problems():
        await cluster.drop(dbname)
    return outcome


def table(outcomes: list[Outcome]) -> str:
    header = (
        "fault",
        "accepted (202)",
        "sent/delivered",
        "still queued",
        "lost",
        "double-billed",
        "client errors (5xx/503/conn)",
        "max client wait",
    )
    lines = []
    for o in outcomes:
        errors = o.send_errors + o.receipt_errors
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "-"
        lines.append(
            (
                o.fault,
                str(o.accepted),
                str(o.sent_or_delivered),
                str(o.still_queued),
                str(len(o.lost)),
                str(len(o.double_billed)),
                f"{o.client_errors} ({kinds})" if o.client_errors else "0",
                f"{o.max_client_wait:.2f} s",
            )
        )
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    out = [" | ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines]
    return "\n".join(out)
