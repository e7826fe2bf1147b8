"""The `smsgw` command: run | api | worker | smpp | migrate.

`smsgw run` is the one-command start: with no DATABASE_URL it starts an embedded
PostgreSQL under the data folder, migrates it, makes a demo tenant with credit, then runs
the API and a worker as child processes until Ctrl-C, which stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
import structlog
from psycopg.rows import dict_row

from core import logs, smpp_accounts, tenants
from core.settings import ENVIRONMENT_HELP, Settings, SettingsError
from db import migrate as migrate_db
from jobs.app import QUEUES
from smsgw import __version__, processes
from smsgw import doctor as smsgw_doctor
from smsgw.gc_tuning import freeze_startup_objects

log = structlog.get_logger("smsgw.cli")

DEMO_TENANT = "demo"
DEMO_CREDIT = 100_000_000  # 100 USD in micro-units
DEMO_TO = "+14155552671"


def _settings(**overrides: object) -> Settings:
    try:
        return Settings.from_env(os.environ, **overrides)
    except SettingsError as exc:
        raise SystemExit(f"smsgw: {exc}") from None


def _require_database_url() -> None:
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("smsgw: DATABASE_URL is not set (or use `smsgw run` for an embedded one)")


async def _migrate(database_url: str, partitions_ahead_days: int) -> list[str]:
    return await migrate_db.migrate(database_url, partitions_ahead_days=partitions_ahead_days)


def cmd_migrate(args: argparse.Namespace) -> int:
    _require_database_url()
    settings = _settings()
    logs.configure(json=settings.log_json, level=settings.log_level)
    try:
        applied = asyncio.run(_migrate(settings.database_url, settings.partitions_ahead_days))
    except migrate_db.PreReleaseDatabase as exc:
        raise SystemExit(f"smsgw: {exc}") from None
    print("applied: " + ", ".join(applied) if applied else "schema is current; nothing applied")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    _require_database_url()
    settings = _settings()  # fail fast on a bad environment, before forking server workers
    logs.configure(json=settings.log_json, level=settings.log_level)
    from granian import Granian
    from granian.constants import Interfaces, Loops

    Granian(
        "smsgw.asgi:create",
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
        backlog=4096,
        log_access=False,
        log_dictconfig=logs.GRANIAN_LOG_CONFIG,
    ).serve()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    _require_database_url()
    overrides: dict[str, object] = {}
    if args.concurrency:
        overrides["worker_concurrency"] = args.concurrency
    settings = _settings(**overrides)
    logs.configure(json=settings.log_json, level=settings.log_level)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown:
        raise SystemExit(f"smsgw: unknown queue(s) {', '.join(unknown)}")
    from jobs.worker import run_worker

    freeze_startup_objects()
    asyncio.run(run_worker(settings, queues=queues, name=args.name))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    _require_database_url()
    settings = _settings()
    logs.configure(json=settings.log_json, level="WARNING")
    return smsgw_doctor.run(settings, args)


DEFAULT_SMPP_PORT = 2775


def cmd_smpp(args: argparse.Namespace) -> int:
    _require_database_url()
    settings = _settings()
    logs.configure(json=settings.log_json, level=settings.log_level)
    port = args.port if args.port is not None else (settings.smpp_port or DEFAULT_SMPP_PORT)
    import uvloop

    from jobs.scheduler import ProcrastinateScheduler
    from smpp_server.server import SchemaBehind, serve

    freeze_startup_objects()
    try:
        uvloop.run(serve(settings, host=args.host, port=port, scheduler=ProcrastinateScheduler()))
    except SchemaBehind as exc:
        print(f"smsgw smpp: {exc}", file=sys.stderr)
        return 2
    return 0


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


async def _seed_demo(database_url: str) -> str:
    """A demo tenant with credit; a fresh API key for it on every run (keys show once)."""
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
        return key.api_key


def _shown_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104


def _banner(host: str, port: int, admin_token: str, api_key: str, generated: bool) -> str:
    shown = _shown_host(host)
    base = f"http://{shown}:{port}"
    lines = [
        "",
        f"smsgw is running at {base}  (OpenAPI: {base}/schema/openapi.json)",
        f"  demo tenant API key: {api_key}",
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


def cmd_run(args: argparse.Namespace) -> int:
    from smsgw.embedded import EmbeddedError, EmbeddedPostgres

    embedded: EmbeddedPostgres | None = None
    env = dict(os.environ)
    # One decision for this process and the children it starts, which write to the same
    # stderr: SMSGW_LOG_JSON when set, else human-readable lines on a terminal, JSON
    # elsewhere. Handed down explicitly, so the API and the worker never disagree.
    log_json = logs.wants_json(_settings(database_url="").log_json)
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
            asyncio.run(_migrate(settings.database_url, settings.partitions_ahead_days))
        except migrate_db.PreReleaseDatabase as exc:
            where = f"; its data folder is {embedded.root}" if embedded is not None else ""
            raise SystemExit(f"smsgw: {exc}{where}") from None
        api_key = asyncio.run(_seed_demo(settings.database_url))
        # The children write to this terminal: their lines are the run's log.
        api = ["api", "--host", args.host, "--port", str(args.port)]
        children.append(processes.spawn(processes.smsgw_command(*api), env=env, log=None))
        children.append(processes.spawn(processes.smsgw_command("worker"), env=env, log=None))
        smpp_login = None
        if settings.smpp_port:
            smpp_login = asyncio.run(_seed_demo_smpp(settings.database_url))
            smpp = ["smpp", "--host", args.host, "--port", str(settings.smpp_port)]
            children.append(processes.spawn(processes.smsgw_command(*smpp), env=env, log=None))
        base = f"http://{_shown_host(args.host)}:{args.port}"
        try:
            processes.wait_http(f"{base}/ready", watch=children, timeout=60)
        except processes.StartError as exc:
            raise SystemExit(f"smsgw: the API did not start ({exc}); see the log above") from None
        print(
            _banner(args.host, args.port, env["SMSGW_ADMIN_TOKEN"], api_key, generated), flush=True
        )
        if smpp_login is not None:
            try:
                processes.wait_listening(
                    _shown_host(args.host), settings.smpp_port, watch=children, timeout=30
                )
            except processes.StartError as exc:
                raise SystemExit(f"smsgw: the SMPP listener did not start ({exc})") from None
            print(
                f"SMPP 3.4 listener on {_shown_host(args.host)}:{settings.smpp_port}: bind as "
                f"system_id {smpp_login[0]}, password {smpp_login[1]} (the demo tenant)\n",
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


def build_parser() -> argparse.ArgumentParser:
    environment = "\n".join(f"  {k}: {v}" for k, v in ENVIRONMENT_HELP.items())
    parser = argparse.ArgumentParser(
        prog="smsgw",
        description="SMS gateway: REST API, credit ledger and delivery workers.",
        epilog="environment:\n" + environment,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"smsgw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="API and worker in one command (embedded DB if no DATABASE_URL)"
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.set_defaults(func=cmd_run)
    api = sub.add_parser("api", help="the REST API under granian")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1, help="server processes")
    api.set_defaults(func=cmd_api)
    worker = sub.add_parser("worker", help="a delivery worker")
    worker.add_argument(
        "--queues",
        default=",".join(QUEUES),
        help=f"comma-separated, of: {', '.join(QUEUES)} (default: all)",
    )
    worker.add_argument("--concurrency", type=int, default=0, help="jobs at once")
    worker.add_argument("--name", default="worker")
    worker.set_defaults(func=cmd_worker)
    smpp = sub.add_parser("smpp", help="the SMPP 3.4 listener for tenants' ESMEs")
    smpp.add_argument("--host", default="127.0.0.1")
    smpp.add_argument("--port", type=int, default=None, help="default: SMSGW_SMPP_PORT, else 2775")
    smpp.set_defaults(func=cmd_smpp)
    migrate = sub.add_parser("migrate", help="bring the schema up to date (idempotent)")
    migrate.set_defaults(func=cmd_migrate)
    doctor = sub.add_parser(
        "doctor",
        help="what needs attention: schema, partitions, queues, workers, breakers, replica",
        description="Checks the gateway's database (DATABASE_URL, REPORTING_DATABASE_URL) "
        "and prints one line per check. Exit status 0 when all is well, 1 when something "
        "needs attention, 2 when the database cannot be reached.",
    )
    smsgw_doctor.add_arguments(doctor)
    doctor.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
