"""The `smsgw` command: run | api | worker | smpp | migrate | doctor | rates, and --version.

Each command reads the environment once (``Settings.from_env``), configures logging and
starts its process; `smsgw run` is in run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import structlog

from core import logs
from core.settings import ENVIRONMENT_HELP, Settings
from db import migrate as migrate_db
from jobs.app import QUEUES
from smsgw import __version__
from smsgw import doctor as smsgw_doctor
from smsgw import rates as smsgw_rates
from smsgw.gc_tuning import freeze_startup_objects
from smsgw.run import run_all, settings_or_exit

log = structlog.get_logger("smsgw.cli")


def _settings(**overrides: object) -> Settings:
    return settings_or_exit(os.environ, **overrides)


def _require_database_url() -> None:
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("smsgw: DATABASE_URL is not set (or use `smsgw run` for an embedded one)")


def cmd_migrate(args: argparse.Namespace) -> int:
    _require_database_url()
    settings = _settings()
    logs.configure(json=settings.log_json, level=settings.log_level)
    try:
        applied = asyncio.run(
            # Direct, never through a transaction-mode pooler: the lock that queues
            # concurrent runs is the session's.
            migrate_db.migrate(
                settings.direct_url, partitions_ahead_days=settings.partitions_ahead_days
            )
        )
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
    import uvloop

    from jobs.worker import run_worker

    freeze_startup_objects()
    # uvloop as the API and the SMPP listener have: a worker's time is mostly the event
    # loop's (webhooks, provider calls, database round trips).
    uvloop.run(run_worker(settings, queues=queues, name=args.name))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    _require_database_url()
    settings = _settings()
    logs.configure(json=settings.log_json, level="WARNING")
    return smsgw_doctor.run(settings, args)


def cmd_rates(args: argparse.Namespace) -> int:
    _require_database_url()
    settings = _settings()
    logs.configure(json=settings.log_json, level="WARNING")
    return smsgw_rates.run(settings.database_url, args)


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


def cmd_run(args: argparse.Namespace) -> int:
    return run_all(host=args.host, port=args.port)


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
    rates = sub.add_parser(
        "rates",
        help="rate cards: import a CSV price list as a new version, export a version",
        description="`smsgw rates import CARD FILE [--effective-at T] [--dry-run]` and "
        "`smsgw rates export CARD [VERSION]`, against DATABASE_URL. A malformed file is "
        "refused whole, every problem listed by line (exit status 1).",
    )
    smsgw_rates.add_arguments(rates)
    rates.set_defaults(func=cmd_rates)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
