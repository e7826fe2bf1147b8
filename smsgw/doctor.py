"""`smsgw doctor`: the checks of core/doctor.py against DATABASE_URL (and
REPORTING_DATABASE_URL), one line each; exit status 1 when something needs attention,
2 when the database cannot be reached at all."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

import msgspec
import psycopg
from psycopg.rows import dict_row

from core import doctor
from core.settings import Settings
from db import Conn
from db import doctor as doctor_db
from db.pool import open_pool

CONNECT_TIMEOUT = 5


async def _connect(url: str) -> Conn:
    conn = await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT
    )
    # A check must never hang on a busy server.
    await conn.execute("SET statement_timeout = '10s'")
    return conn


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


async def _examine(
    settings: Settings, limits: doctor.Limits, with_ledger: bool
) -> list[doctor.Finding]:
    try:
        primary = await _connect(settings.database_url)
    except psycopg.Error as exc:
        detail = f"cannot connect: {_first_line(exc)}"
        return [doctor.Finding(check="database", status="fail", detail=detail)]
    async with primary:
        version = await doctor_db.server_version(primary)
        found = [doctor.Finding(check="database", status="ok", detail=f"PostgreSQL {version}")]
        url = settings.reporting_database_url
        reporting: Conn | None = None
        unreachable: doctor.Finding | None = None
        if url and url != settings.database_url:
            try:
                reporting = await _connect(url)
            except psycopg.Error as exc:
                detail = f"REPORTING_DATABASE_URL: cannot connect: {_first_line(exc)}"
                unreachable = doctor.Finding(check="replica", status="fail", detail=detail)
        pool = await open_pool(settings.database_url, min_size=1, max_size=2, name="doctor")
        try:
            checks = await doctor.examine(pool, reporting, limits=limits, with_ledger=with_ledger)
        finally:
            await pool.close()
            if reporting is not None:
                await reporting.close()
    if unreachable is not None:
        checks = [unreachable if c.check == "replica" else c for c in checks]
    return found + checks


def render(findings: list[doctor.Finding], out: TextIO) -> None:
    width = max(len(f.check) for f in findings)
    for f in findings:
        print(f"{f.status:<5} {f.check:<{width}}  {f.detail}", file=out)
    attention = sum(f.status != "ok" for f in findings)
    print(
        f"{attention} check(s) need attention." if attention else "Everything looks right.",
        file=out,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = doctor.Limits()
    parser.add_argument("--json", action="store_true", help="one JSON document, for machines")
    parser.add_argument(
        "--ledger",
        action="store_true",
        help="also check the ledger invariant (reads the whole ledger: slow on a big one)",
    )
    parser.add_argument(
        "--queue-age",
        type=float,
        default=defaults.queue_age_seconds,
        help="seconds a due message may wait before a tier counts as behind (%(default)s)",
    )
    parser.add_argument(
        "--job-wait",
        type=float,
        default=defaults.job_wait_seconds,
        help="seconds a due job may wait for a worker (%(default)s)",
    )
    parser.add_argument(
        "--replica-lag",
        type=float,
        default=defaults.replica_lag_seconds,
        help="seconds the reporting replica may be behind (%(default)s)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    limits = doctor.Limits(
        queue_age_seconds=args.queue_age,
        job_wait_seconds=args.job_wait,
        replica_lag_seconds=args.replica_lag,
    )
    findings = asyncio.run(_examine(settings, limits, args.ledger))
    if args.json:
        sys.stdout.write(msgspec.json.encode(findings).decode() + "\n")
    else:
        render(findings, sys.stdout)
    if findings[0].check == "database" and findings[0].status == "fail":
        return 2
    return 1 if doctor.needs_attention(findings) else 0
