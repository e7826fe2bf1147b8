"""`smsgw run`: the gateway in one command, for a first try and for development.

With no DATABASE_URL it starts an embedded PostgreSQL under the data folder; then it
migrates the database, makes a demo tenant with credit, runs the API and a worker (and
the SMPP listener when SMSGW_SMPP_PORT is set) as child processes writing to this
terminal, prints how to send a first message, and waits. Ctrl-C stops everything it
started.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import psycopg
from psycopg.rows import dict_row

from core import console, logs, numbers, smpp_accounts, tenants
from core.errors import Conflict
from core.settings import Settings, SettingsError
from db import migrate as migrate_db
from smsgw import processes
from smsgw.embedded import EmbeddedError, EmbeddedPostgres

DEMO_TENANT = "demo"
DEMO_CREDIT = 100_000_000  # 100 USD in micro-units
DEMO_TO = "+14155552671"
# The demo tenant's own number: a message names it or none (the gateway then picks it for
# US destinations), an ESME sends from it, and the README's Twilio example uses it.
DEMO_FROM = "+14155550100"


def settings_or_exit(environ: Mapping[str, str], **overrides: object) -> Settings:
    """The settings, or the process ends saying which variable is wrong."""
    try:
        return Settings.from_env(environ, **overrides)
    except SettingsError as exc:
        raise SystemExit(f"smsgw: {exc}") from None


async def _seed_demo_smpp(database_url: str) -> tuple[str, str]:
    """SMPP credentials for the demo tenant, a new password on every run (shown once)."""
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as conn:
        cursor = await conn.execute(
            "SELECT id FROM tenants WHERE name = %s ORDER BY created_at LIMIT 1", (DEMO_TENANT,)
        )
        row = await cursor.fetchone()
        assert row is not None
        account, password = await smpp_accounts.issue_credentials(conn, tenant_id=row["id"])
        return account.system_id, password


class Demo(NamedTuple):
    api_key: str
    # One-time console sign-in links' tokens (24 h): the demo tenant's, the operator's.
    tenant_link: str
    operator_link: str


async def _seed_demo(database_url: str) -> Demo:
    """A demo tenant with credit and its number (DEMO_FROM); a fresh API key for it on
    every run (keys show once), and one-time sign-in links to the consoles."""
    async with await psycopg.AsyncConnection.connect(
        database_url, autocommit=True, row_factory=dict_row
    ) as conn:
        async with conn.transaction():
            cursor = await conn.execute(
                "SELECT id FROM tenants WHERE name = %s ORDER BY created_at LIMIT 1", (DEMO_TENANT,)
            )
            row = await cursor.fetchone()
            if row is None:
                tenant, key = await tenants.create_tenant(
                    conn, name=DEMO_TENANT, tier="standard", rate_limit_mps=None
                )
                tenant_id = tenant.id
            else:
                tenant_id = row["id"]
                key = await tenants.issue_api_key(conn, tenant_id=tenant_id)
            await tenants.add_credit(
                conn, tenant_id=tenant_id, amount=DEMO_CREDIT, reference="demo-initial-credit"
            )
            # An operator may have given the number to another tenant: the demo then sends
            # without one (the upstream's default sender).
            with contextlib.suppress(Conflict):
                await numbers.add_number(conn, tenant_id=tenant_id, number=DEMO_FROM)
            tenant_link = await console.sign_in_link(conn, audience="tenant", tenant_id=tenant_id)
            operator_link = await console.sign_in_link(conn, audience="operator", tenant_id=None)
        return Demo(key.api_key, tenant_link, operator_link)


def _shown_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104


def _banner(host: str, port: int, admin_token: str, demo: Demo, generated: bool) -> str:
    shown = _shown_host(host)
    base = f"http://{shown}:{port}"
    api_key = demo.api_key
    lines = [
        "",
        f"smsgw is running at {base}  (OpenAPI: {base}/schema/openapi.json)",
        f"  consoles: {base}/console/  (operators: {base}/console/operator/sign-in)",
        f"  sign in once, within 24 h, as the demo tenant: {base}/console/links/{demo.tenant_link}",
        f"                          as the operator: {base}/console/links/{demo.operator_link}",
        f"  demo tenant API key: {api_key}  (it sends from its number {DEMO_FROM})",
        f"  admin token{' (generated)' if generated else ''}: {admin_token}",
        "",
        "Send a first message:",
        f"  curl -s -X POST {base}/v1/messages \\",
        f"    -H 'Authorization: Bearer {api_key}' \\",
        "    -H 'Content-Type: application/json' \\",
        f'    -d \'{{"to": "{DEMO_TO}", "body": "Hello from smsgw"}}\'',
        "",
        "Then read it back with the id from the answer:",
        f"  curl -s {base}/v1/messages/<id> -H 'Authorization: Bearer {api_key}'",
        "",
        "Ctrl-C stops the API, the worker and the embedded database.",
        "",
    ]
    return "\n".join(lines)


def run_all(*, host: str, port: int) -> int:
    """Runs until Ctrl-C (or SIGTERM); 1 if a child process exited on its own."""
    embedded: EmbeddedPostgres | None = None
    env = dict(os.environ)
    # One decision for this process and the children it starts, which write to the same
    # stderr: SMSGW_LOG_JSON when set, else human-readable lines on a terminal, JSON
    # elsewhere. Handed down explicitly, so the API and the worker never disagree.
    log_json = logs.wants_json(settings_or_exit(os.environ, database_url="").log_json)
    logs.configure(json=log_json, level=env.get("SMSGW_LOG_LEVEL", "INFO"))
    env["SMSGW_LOG_JSON"] = "true" if log_json else "false"
    if not env.get("DATABASE_URL"):
        data_dir = Path(env.get("SMSGW_DATA_DIR", "data")) / "postgres"
        try:
            embedded = EmbeddedPostgres(data_dir)
            if embedded.moved_from is not None:
                print(
                    f"smsgw: {embedded.moved_from} is not reachable by the postgres account; "
                    f"the embedded database lives in {embedded.root} instead",
                    file=sys.stderr,
                )
            env["DATABASE_URL"] = embedded.start()
        except EmbeddedError as exc:
            raise SystemExit(f"smsgw: {exc}") from None
        print(
            f"smsgw: embedded PostgreSQL on 127.0.0.1:{embedded.port} ({embedded.root})",
            flush=True,
        )
    generated = not env.get("SMSGW_ADMIN_TOKEN")
    if generated:
        env["SMSGW_ADMIN_TOKEN"] = "adm_" + secrets.token_urlsafe(24)
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        settings = Settings.from_env(env)
        try:
            asyncio.run(
                migrate_db.migrate(
                    settings.direct_url, partitions_ahead_days=settings.partitions_ahead_days
                )
            )
        except migrate_db.PreReleaseDatabase as exc:
            where = f"; its data folder is {embedded.root}" if embedded is not None else ""
            raise SystemExit(f"smsgw: {exc}{where}") from None
        demo = asyncio.run(_seed_demo(settings.database_url))
        # The children write to this terminal: their lines are the run's log.
        api = ["api", "--host", host, "--port", str(port)]
        children.append(processes.spawn(processes.smsgw_command(*api), env=env, log=None))
        children.append(processes.spawn(processes.smsgw_command("worker"), env=env, log=None))
        smpp_login = None
        if settings.smpp_port:
            smpp_login = asyncio.run(_seed_demo_smpp(settings.database_url))
            smpp = ["smpp", "--host", host, "--port", str(settings.smpp_port)]
            children.append(processes.spawn(processes.smsgw_command(*smpp), env=env, log=None))
        base = f"http://{_shown_host(host)}:{port}"
        try:
            processes.wait_http(f"{base}/ready", watch=children, timeout=60)
        except processes.StartError as exc:
            raise SystemExit(f"smsgw: the API did not start ({exc}); see the log above") from None
        print(_banner(host, port, env["SMSGW_ADMIN_TOKEN"], demo, generated), flush=True)
        if smpp_login is not None:
            try:
                processes.wait_listening(
                    _shown_host(host), settings.smpp_port, watch=children, timeout=30
                )
            except processes.StartError as exc:
                raise SystemExit(f"smsgw: the SMPP listener did not start ({exc})") from None
            print(
                f"SMPP 3.4 listener on {_shown_host(host)}:{settings.smpp_port}: bind as "
                f"system_id {smpp_login[0]}, password {smpp_login[1]} (the demo tenant; "
                f"source_addr {DEMO_FROM[1:]}, TON 1, or none)\n",
                flush=True,
            )
        while not stopping:
            if any(child.poll() is not None for child in children):
                print("smsgw: a child process exited; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        processes.stop_all(children, timeout=30)
        if embedded is not None:
            embedded.stop()
            print("smsgw: stopped API, worker and embedded PostgreSQL")
