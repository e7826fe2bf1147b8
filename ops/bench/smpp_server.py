"""SMPP server ingest throughput: submit_sm per second into `smsgw smpp`.

Starts a private PostgreSQL (under a temporary folder), migrates it, makes tenants with
credit and SMPP credentials, and starts ONE `smsgw smpp` process. ESMEs in this
process (smpp34's asyncio client, Rust: light on the CPU the server shares) bind as
transceivers and submit single-part messages, each bind keeping ``--window`` submits
outstanding. Timed from the first submit_sm to the last submit_sm_resp, every one of
which comes after its message's accept committed (hold, row, dispatch job). No worker
runs: this is the ingest side alone.

Three runs: one bind; four binds of one tenant (one high-volume ESME, its accepts
meeting on the tenant's balance row); four binds of four tenants. Each against the
listener as shipped (submits that arrive together share an accept call) and again with
`SMSGW_ACCEPT_CALLS=0` (an accept call per submit), in the same run.

    python -m ops.bench.smpp_server [--messages 20000] [--window 10]
                                    [--registered-delivery 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import smpp34
from psycopg.rows import dict_row

from core import numbers, smpp_accounts, tenants
from smsgw.embedded import SERVER_SETTINGS, EmbeddedPostgres
from smsgw.processes import free_port, smsgw_command, spawn, stop, wait_listening

CREDIT = 10**12  # enough for any run


async def _tenant(db_url: str, name: str, number: str) -> tuple[str, str, str]:
    """A tenant with credit, its SMPP login and the number it sends from (a sender must
    be its own): (system_id, password, source_addr)."""
    async with await psycopg.AsyncConnection.connect(
        db_url, autocommit=True, row_factory=dict_row
    ) as conn:
        async with conn.transaction():
            tenant, _key = await tenants.create_tenant(
                conn, name=name, tier="vip", rate_limit_mps=None
            )
            await tenants.add_credit(conn, tenant_id=tenant.id, amount=CREDIT, reference=name)
            await numbers.add_number(conn, tenant_id=tenant.id, number=number)
        account, password = await smpp_accounts.issue_credentials(conn, tenant_id=tenant.id)
        return account.system_id, password, number.removeprefix("+")


async def _bind_and_submit(
    port: int, login: tuple[str, str, str], count: int, window: int, registered_delivery: int
) -> int:
    client = smpp34.Client("127.0.0.1", port, login[0], login[1], bind_type="TRX")
    session = await client.connect()
    # smpp34 does not bound its window by itself: at most `window` unanswered submits.
    slots = asyncio.Semaphore(window)
    refused = 0

    async def one(number: int) -> None:
        nonlocal refused
        async with slots:
            answer = await session.submit_sm(
                "14155552671",
                f"Your code is {number:06d}".encode(),
                source_addr=login[2],
                source_addr_ton=1,
                source_addr_npi=1,
                dest_addr_ton=1,
                dest_addr_npi=1,
                registered_delivery=registered_delivery,
            )
            if answer.command_status:
                refused += 1

    await asyncio.gather(*(one(n) for n in range(count)))
    await session.unbind()
    await client.stop()
    return refused


async def _run(
    port: int, logins: list[tuple[str, str, str]], messages: int, window: int, rd: int
) -> float:
    share = messages // len(logins)
    started = time.perf_counter()
    refused = await asyncio.gather(
        *(_bind_and_submit(port, login, share, window, rd) for login in logins)
    )
    elapsed = time.perf_counter() - started
    assert not any(refused), f"refused submits: {refused}"
    return share * len(logins) / elapsed


async def main_async(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="smsgw-bench-", dir="/tmp"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "pg", settings=dict(SERVER_SETTINGS))
    db_url = server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    env.update({"DATABASE_URL": db_url, "SMSGW_LOG_LEVEL": "WARNING"})
    try:
        subprocess.run(
            smsgw_command("migrate"),
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        one = await _tenant(db_url, "one-bind", "+14155550200")
        shared = await _tenant(db_url, "four-binds", "+14155550201")
        several = [await _tenant(db_url, f"tenant-{n}", f"+1415555021{n}") for n in range(4)]
        rd = args.registered_delivery
        runs = [("1 bind", [one]), ("4 binds, one tenant", [shared] * 4)]
        runs.append(("4 binds, four tenants", several))
        rates: dict[str, list[float]] = {name: [] for name, _ in runs}
        # The shipped default, then each submit in an accept call of its own.
        for accept_calls in (None, "0"):
            extra = {} if accept_calls is None else {"SMSGW_ACCEPT_CALLS": accept_calls}
            with _listener({**env, **extra}) as port:
                # A short warm-up: connections in the pools, caches filled.
                await _run(port, [one], 1_000, args.window, rd)
                for name, logins in runs:
                    rates[name].append(await _run(port, logins, args.messages, args.window, rd))
        print(
            f"messages per run: {args.messages}, window per bind: {args.window}, "
            f"registered_delivery: {rd}, one `smsgw smpp` process, {os.cpu_count()} CPUs"
        )
        print(f"{'run':<24}{'submits/s':>12}{'one call each':>15}{'ratio':>8}")
        for name, (together, alone) in rates.items():
            print(f"{name:<24}{together:>12.0f}{alone:>15.0f}{together / alone:>8.2f}")
    finally:
        server.destroy()
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _listener(env: dict[str, str]) -> Iterator[int]:
    """A `smsgw smpp` process on a free port, once it answers; SIGTERM after."""
    port = free_port()
    listener = spawn(smsgw_command("smpp", "--port", str(port)), env=env)
    try:
        wait_listening("127.0.0.1", port, watch=[listener])
        yield port
    finally:
        stop(listener, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--registered-delivery", type=int, choices=[0, 1], default=1)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
