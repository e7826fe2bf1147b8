"""`smsgw rates import|export`: rate cards from and to CSV files, against DATABASE_URL,
by the same rules as the admin API (core/rates.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from pathlib import Path

import msgspec
import psycopg
from psycopg.rows import dict_row

from core import audit, rates
from core.errors import DomainError, InvalidRequest

# The operator at the machine: the audit trail names the tool (there is no client address).
_OPERATOR = audit.Actor(kind="system", id="smsgw rates import")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rates_command", required=True)
    load = sub.add_parser(
        "import",
        help="a new version of CARD from a CSV price list (prefix,country,network,price)",
    )
    load.add_argument("card")
    load.add_argument("file", type=Path, help="the CSV file ('-': standard input)")
    load.add_argument(
        "--effective-at",
        type=datetime.fromisoformat,
        default=None,
        help="RFC 3339 with an offset; default now",
    )
    load.add_argument(
        "--dry-run", action="store_true", help="print what would change, write nothing"
    )
    dump = sub.add_parser("export", help="a version of CARD as CSV on standard output")
    dump.add_argument("card")
    dump.add_argument("version", nargs="?", type=int, help="default: the one in effect now")


def run(database_url: str, args: argparse.Namespace) -> int:
    """Exit status 0, or 1 with every problem on standard error (a file's by line)."""
    try:
        output = asyncio.run(_run(database_url, args))
    except InvalidRequest as exc:
        print(f"smsgw rates: {exc.detail}", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error.field}: {error.detail}", file=sys.stderr)
        return 1
    except (DomainError, OSError) as exc:
        print(f"smsgw rates: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(output)
    return 0


async def _run(database_url: str, args: argparse.Namespace) -> str:
    if args.rates_command == "import":
        text = sys.stdin.read() if str(args.file) == "-" else args.file.read_text("utf-8")
    conn = await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row)
    async with conn:
        if args.rates_command == "export":
            return await rates.export_version(conn, card=args.card, version=args.version)
        async with conn.transaction():
            result = await rates.import_version(
                conn,
                card=args.card,
                csv_text=text,
                effective_at=args.effective_at,
                dry_run=args.dry_run,
            )
            await audit.record_version(
                conn, _OPERATOR, "rate_card.version_imported", f"rate_card:{args.card}", result
            )
    return msgspec.json.format(msgspec.json.encode(result)).decode() + "\n"
