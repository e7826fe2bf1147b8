"""Logical backups of the gateway's database: pg_dump's custom format, and pg_restore.

    python -m ops.backup dump --out FILE [--database-url URL]
    python -m ops.backup restore --file FILE --database-url URL [--jobs N]

``dump`` reads ``DATABASE_URL`` unless ``--database-url`` is given. It copies the whole
database in one snapshot (pg_dump runs in a single repeatable-read transaction), so the
ledger adds up in the copy exactly as it did at that instant: smsgw's schema and rows,
procrastinate's schema and jobs, every partition. Sends go on while it runs.

``restore`` loads a dump into an existing, empty database (``createdb`` or
``CREATE DATABASE`` first), in one transaction: either everything is restored or nothing.
Ownership and grants of the source are not replayed (``--no-owner --no-privileges``):
the restoring role owns what it creates. Then it checks the copy: schema version,
tenants, messages, and the ledger invariant (``smsgw_ledger_violations_v1()``), and
exits 1 if the invariant does not hold.

The client programs are the server's own version (``pg_config --bindir``): a pg_dump
older than the server refuses to dump it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from smsgw.embedded import find_bindir


class BackupError(RuntimeError):
    pass


def _client(url: str) -> tuple[str, dict[str, str]]:
    """``url`` as a conninfo string without its password, and an environment carrying
    the password: nothing secret shows in the process list."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


def _run(args: Sequence[str], env: dict[str, str]) -> None:
    result = subprocess.run(list(args), capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed:\n{result.stderr.strip()[-4000:]}")


def dump(url: str, out: Path, *, bindir: Path | None = None) -> None:
    """The whole database, in pg_dump's compressed custom format, to ``out``."""
    conninfo, env = _client(url)
    partial = out.with_name(out.name + ".partial")
    _run(
        [
            str((bindir or find_bindir()) / "pg_dump"),
            "--format=custom",
            "--no-password",
            f"--file={partial}",
            f"--dbname={conninfo}",
        ],
        env,
    )
    # A dump cut short (disk full, connection lost) never takes the name of a good one.
    partial.replace(out)


def restore(file: Path, url: str, *, jobs: int = 1, bindir: Path | None = None) -> None:
    """Load ``file`` into the empty database at ``url``, in one transaction."""
    if not file.is_file():
        raise BackupError(f"no such dump: {file}")
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND c.relkind IN ('r', 'p')"
        ).fetchone()
    if row is not None and row[0]:
        raise BackupError(
            f"the target database already has {row[0]} table(s); restore into an empty one"
        )
    conninfo, env = _client(url)
    args = [
        str((bindir or find_bindir()) / "pg_restore"),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--no-password",
        f"--dbname={conninfo}",
    ]
    # One transaction: all or nothing. Parallel jobs cannot share one, so with --jobs a
    # failed restore leaves a partial database to drop.
    args += [f"--jobs={jobs}"] if jobs > 1 else ["--single-transaction"]
    _run([*args, str(file)], env)


def check(url: str) -> dict[str, int]:
    """What a restored database holds, and how many ledger violations it has."""
    with psycopg.connect(url, autocommit=True) as conn:
        counts = conn.execute(
            "SELECT (SELECT max(version) FROM smsgw_migrations),"
            " (SELECT count(*) FROM tenants), (SELECT count(*) FROM messages),"
            " (SELECT count(*) FROM procrastinate_jobs),"
            " (SELECT count(*) FROM smsgw_ledger_violations_v1())"
        ).fetchone()
    assert counts is not None
    names = ("schema_version", "tenants", "messages", "jobs", "ledger_violations")
    return dict(zip(names, (int(n or 0) for n in counts), strict=True))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.backup", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    take = commands.add_parser("dump", help="pg_dump the database to a file")
    take.add_argument("--out", type=Path, required=True, help="the dump file to write")
    take.add_argument("--database-url", help="default: $DATABASE_URL")
    put = commands.add_parser("restore", help="pg_restore a dump into an empty database")
    put.add_argument("--file", type=Path, required=True, help="a dump made by `dump`")
    put.add_argument("--database-url", required=True, help="the empty target database")
    put.add_argument("--jobs", type=int, default=1, help="parallel restore jobs (1)")
    args = parser.parse_args(argv)
    try:
        if args.command == "dump":
            url = args.database_url or os.environ.get("DATABASE_URL")
            if not url:
                parser.error("DATABASE_URL is not set and --database-url was not given")
            dump(url, args.out)
            print(f"dumped to {args.out} ({args.out.stat().st_size:,} bytes)")
            return 0
        restore(args.file, args.database_url, jobs=args.jobs)
        found = check(args.database_url)
    except (BackupError, psycopg.Error) as exc:
        print(f"ops.backup: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored {args.file}: schema version {found['schema_version']},"
        f" {found['tenants']} tenants, {found['messages']} messages, {found['jobs']} jobs,"
        f" ledger violations: {found['ledger_violations']}"
    )
    return 1 if found["ledger_violations"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
