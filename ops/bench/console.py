"""Issue 28's page timings: every console page at a tenant with 10M messages, over HTTP,
signed in as a user is.

Starts a private PostgreSQL (durable settings), migrates it, runs `smsgw api` (granian),
creates the measured tenant and five others through the admin API, loads ``--messages``
messages of the measured tenant over the last 30 days and a twentieth of that for the
others (ops/bench/console_data.py: set-based, a sample with its status events and
callbacks), folds the closed hours into rollups with the worker's fold, then signs in
to both consoles as a browser does (the operator with the admin token; the tenant's
owner through an invitation and a password) and requests each page ``--calls`` times in
a row after one unmeasured call: p50 and p95 of the HTTP round trip, per page.

    nice -n 10 .venv/bin/python -m ops.bench.console              # 10M: about 20 minutes
    nice -n 10 .venv/bin/python -m ops.bench.console --quick      # 200,000 messages

The API runs one granian process with no other load, so a figure is one page's latency
on a quiet server; no worker runs (nothing is sent or folded while measuring).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg

from core import cursors
from ops.bench import console_data
from smsgw.embedded import EmbeddedPostgres
from smsgw.processes import await_http, free_port, smsgw_command, spawn, stop

ADMIN = "bench-admin-token"
BEARER = {"Authorization": f"Bearer {ADMIN}"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LINK = re.compile(r'id="invitation-link">([^<]+)<')
LIMIT_MS = 100


@dataclass(frozen=True)
class Page:
    console: str  # "tenant" or "operator"
    label: str
    path: str
    bearer: bool = False  # the dashboard's data: the admin token, as its page sends it


def _csrf(answer: httpx.Response) -> str:
    found = CSRF.search(answer.text)
    if not found:
        raise SystemExit(f"no CSRF token on {answer.url} ({answer.status_code})")
    return found.group(1)


async def operator_session(client: httpx.AsyncClient) -> str:
    """Signs ``client`` in as the operator; the session's CSRF token."""
    form = await client.get("/console/operator/sign-in")
    signed = await client.post(
        "/console/operator/sign-in", data={"token": ADMIN, "csrf_token": _csrf(form)}
    )
    if signed.status_code != 303:
        raise SystemExit(f"operator sign-in: {signed.status_code} {signed.text[:300]}")
    return _csrf(await client.get("/console/operator/tenants"))


async def owner_session(
    client: httpx.AsyncClient, operator: httpx.AsyncClient, csrf: str, tenant_id: str
) -> None:
    """The operator invites the tenant's owner; ``client`` accepts, sets a password and
    ends up signed in as the owner."""
    invited = await operator.post(
        f"/console/operator/tenants/{tenant_id}/invitations",
        data={"email": f"owner-{time.time_ns()}@measured.example", "csrf_token": csrf},
    )
    link = LINK.search(invited.text)
    if not link:
        raise SystemExit(f"invitation: {invited.status_code} {invited.text[:300]}")
    path = httpx.URL(link.group(1)).path
    form = await client.get(path)
    accepted = await client.post(
        path, data={"password": "a long bench passphrase", "csrf_token": _csrf(form)}
    )
    if accepted.status_code != 303:
        raise SystemExit(f"accepting the invitation: {accepted.status_code}")


def _samples(db_url: str, tenant: str) -> dict[str, str]:
    """What the pages are asked for: a sampled message (it has its status history), the
    newest message's recipient, a day half-way back and a cursor 20 days back."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        sampled = conn.execute(
            "SELECT message_id FROM message_events WHERE tenant_id = %s"
            " AND message_created_at > now() - interval '1 day' LIMIT 1",
            (tenant,),
        ).fetchone()
        newest = conn.execute(
            "SELECT to_number FROM messages WHERE tenant_id = %s"
            " ORDER BY created_at DESC, id DESC LIMIT 1",
            (tenant,),
        ).fetchone()
        back = conn.execute(
            "SELECT id FROM messages WHERE tenant_id = %s AND created_at < now() - interval"
            " '20 days' ORDER BY created_at DESC, id DESC LIMIT 1",
            (tenant,),
        ).fetchone()
    if not (sampled and newest and back):
        raise SystemExit("the load left no messages to ask for")
    return {
        "message": str(sampled[0]),
        "recipient": str(newest[0]),
        "day": (datetime.now(UTC) - timedelta(days=15)).date().isoformat(),
        "cursor": cursors.encode(back[0]),
    }


def pages(tenant: str, sample: dict[str, str]) -> list[Page]:
    message = f"/console/messages/{sample['message']}"
    day = sample["day"]
    return [
        Page("tenant", "overview", "/console/"),
        Page("tenant", "charts (usage fragment)", "/console/usage?fragment=true"),
        Page("tenant", "messages, first page", "/console/messages"),
        Page(
            "tenant",
            "messages, a keyset page 20 days back",
            f"/console/messages?cursor={quote(sample['cursor'])}",
        ),
        Page(
            "tenant",
            "messages to a recipient",
            f"/console/messages?to={quote(sample['recipient'])}",
        ),
        # The load's numbers are +1415 0000000-0099999: this one has no message at all,
        # which a walk of the history would read to its start to find out.
        Page("tenant", "messages to a recipient with none", "/console/messages?to=%2B14159999999"),
        Page("tenant", "messages failed (2%)", "/console/messages?status=failed"),
        Page("tenant", "messages canceled (none)", "/console/messages?status=canceled"),
        Page("tenant", "messages of one day", f"/console/messages?day_from={day}&day_to={day}"),
        Page("tenant", "a message's page", message),
        Page("tenant", "its status poll", f"{message}/status"),
        Page("tenant", "API keys", "/console/keys"),
        Page("tenant", "webhooks", "/console/webhooks"),
        Page("tenant", "numbers and sender IDs", "/console/numbers"),
        Page("tenant", "opt-outs", "/console/suppressions"),
        Page("tenant", "team", "/console/team"),
        Page("tenant", "audit log", "/console/audit"),
        Page("operator", "tenants", "/console/operator/tenants"),
        Page("operator", "tenants, search", "/console/operator/tenants?q=measured"),
        Page("operator", "a tenant's page", f"/console/operator/tenants/{tenant}"),
        Page(
            "operator",
            "its traffic today (fragment)",
            f"/console/operator/tenants/{tenant}/traffic",
        ),
        Page("operator", "providers and routes", "/console/operator/providers"),
        Page("operator", "rate cards", "/console/operator/rate-cards"),
        Page("operator", "audit log", "/console/operator/audit"),
        Page("operator", "dashboard page", "/dashboard"),
        Page("operator", "dashboard data", "/v1/admin/dashboard", bearer=True),
    ]


async def measure(client: httpx.AsyncClient, page: Page, calls: int) -> tuple[float, float]:
    """p50 and p95 in ms of ``calls`` round trips, after one unmeasured call."""
    headers = BEARER if page.bearer else {}
    times = []
    for n in range(calls + 1):
        started = time.perf_counter()
        answer = await client.get(page.path, headers=headers)
        took = time.perf_counter() - started
        if answer.status_code != 200:
            raise SystemExit(f"{page.path}: {answer.status_code} {answer.text[:300]}")
        if n:
            times.append(took * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * len(times)) - 1)]


def table(rows: list[tuple[Page, float, float]]) -> str:
    width = max(len(f"{p.console}: {p.label}") for p, _, _ in rows)
    lines = [f"{'page':<{width}}  {'p50 ms':>7}  {'p95 ms':>7}", "-" * (width + 18)]
    for p, p50, p95 in rows:
        flag = "  over 100 ms" if p95 > LIMIT_MS else ""
        lines.append(f"{f'{p.console}: {p.label}':<{width}}  {p50:>7.1f}  {p95:>7.1f}{flag}")
    return "\n".join(lines)


async def load(operator: httpx.AsyncClient, db_url: str, messages: int) -> tuple[str, int, float]:
    """The tenants through the admin API, then their messages and rollups; the measured
    tenant's id, the messages written and the seconds it all took."""
    made = []
    for name in ("measured", *(f"neighbour {i}" for i in range(1, 6))):
        answer = await operator.post("/v1/admin/tenants", json={"name": name}, headers=BEARER)
        answer.raise_for_status()
        made.append(answer.json()["id"])
    tenant, others = made[0], made[1:]
    credit = {"amount": 10**12, "reference": "bench"}
    topped = await operator.post(f"/v1/admin/tenants/{tenant}/credits", json=credit, headers=BEARER)
    topped.raise_for_status()
    print(f"loading {messages:,} messages of the measured tenant", flush=True)
    began = started = time.perf_counter()
    written = console_data.load_messages(db_url, measured=tenant, messages=messages, others=others)
    console_data.load_account(db_url, measured=tenant)
    print(f"  {written:,} messages written: {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    hours = await console_data.fold(db_url)
    print(f"  {hours} hours folded: {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    indexed = await console_data.index_recipients(db_url)
    print(f"  {indexed:,} recipients indexed: {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()
    console_data.settle(db_url)
    print(f"  vacuum, analyze, checkpoint: {time.perf_counter() - started:.0f} s", flush=True)
    loaded = time.perf_counter() - began
    print(f"loaded in {loaded:.0f} s", flush=True)
    return tenant, written, loaded


async def run(args: argparse.Namespace) -> None:
    base = args.data or Path(tempfile.mkdtemp(prefix="smsgw-console-", dir="/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)  # the embedded server runs as `postgres` when we are root
    marker = base / "loaded"
    server = EmbeddedPostgres(base / "pg")
    db_url = server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update({"DATABASE_URL": db_url, "SMSGW_ADMIN_TOKEN": ADMIN, "SMSGW_LOG_LEVEL": "WARNING"})
    port = free_port()
    api: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(smsgw_command("migrate"), env=env, check=True, capture_output=True)
        api = spawn(smsgw_command("api", "--port", str(port)), env=env)
        base_url = f"http://127.0.0.1:{port}"
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=120) as operator,
            httpx.AsyncClient(base_url=base_url, timeout=120) as owner,
        ):
            await await_http(f"{base_url}/ready", within=60)
            if marker.exists():
                kept = marker.read_text().split()
                tenant, written, loaded = kept[0], int(kept[1]), float(kept[2])
                print(f"reusing the data of {base} (loaded in {loaded:.0f} s)", flush=True)
                await console_data.fold(db_url)  # the hours closed since
                started = time.perf_counter()
                indexed = await console_data.index_recipients(db_url)
                took = time.perf_counter() - started
                print(f"  {indexed:,} recipients indexed: {took:.0f} s", flush=True)
            else:
                tenant, written, loaded = await load(operator, db_url, args.messages)
                if args.data:
                    marker.write_text(f"{tenant} {written} {loaded}")
            tail = console_data.raw_tail(db_url, tenant)
            print(f"{tail:,} of the tenant's messages not yet folded", flush=True)

            csrf = await operator_session(operator)
            await owner_session(owner, operator, csrf, tenant)
            sample = _samples(db_url, tenant)
            rows = []
            for page in pages(tenant, sample):
                client = owner if page.console == "tenant" else operator
                p50, p95 = await measure(client, page, args.calls)
                rows.append((page, p50, p95))
                print(f"  {page.console}: {page.label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            # The worst moment for the reports: an hour has closed and is not folded yet.
            mark = console_data.unfold_last_hour(db_url)
            unfolded = console_data.raw_tail(db_url, tenant)
            try:
                for page in pages(tenant, sample):
                    if page.path.endswith(("/usage?fragment=true", "/traffic")):
                        client = owner if page.console == "tenant" else operator
                        p50, p95 = await measure(client, page, args.calls)
                        late = Page(page.console, f"{page.label}, last hour unfolded", page.path)
                        rows.append((late, p50, p95))
                        print(f"  {late.console}: {late.label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            finally:
                console_data.refold(db_url, mark)
        print()
        print(
            f"{written:,} messages over 30 days, the measured tenant's and a twentieth of that"
            f" for five others; {tail:,} after the last folded hour ({unfolded:,} with the last"
            f" hour unfolded); load {loaded:.0f} s;"
            f" {args.calls} calls per page"
        )
        print(table(rows))
    finally:
        if api is not None:
            stop(api, timeout=30)
        server.stop()
        if not args.data:
            shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="200,000 messages")
    parser.add_argument("--calls", type=int, default=20, help="measured calls per page")
    parser.add_argument(
        "--data",
        type=Path,
        help="keep the database in this folder; a later run with the same folder measures"
        " the same rows again (migrated first) without loading them",
    )
    args = parser.parse_args()
    if args.quick:
        args.messages = 200_000
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
