"""The command line: ``python -m ops.drills.failover [--fast]`` (see the package's docstring)."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import ops.drills.failover
from ops.drills.failover.drill import drive
from ops.drills.failover.formation import Formation
from ops.drills.failover.gateway import Gateway
from ops.drills.failover.report import report, verify


def main(argv: Sequence[str] | None = None) -> int:
    # prog: argv[0] is this file's name, "__main__.py", which says nothing.
    parser = argparse.ArgumentParser(
        prog="python -m ops.drills.failover",
        description=ops.drills.failover.__doc__.split("\n\n")[0],
    )
    parser.add_argument("--senders", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument(
        "--rate", type=float, default=100, help="sends per second, all clients (100)"
    )
    parser.add_argument("--before", type=float, default=5, help="seconds of sends before the kill")
    parser.add_argument("--after", type=float, default=10, help="seconds of sends after recovery")
    parser.add_argument("--client-timeout", type=float, default=30, help="per request (30 s)")
    parser.add_argument(
        "--fast", action="store_true", help="shorter failure detection and demote timeout"
    )
    parser.add_argument("--keep", action="store_true", help="keep data folders and logs")
    args = parser.parse_args(argv)
    if shutil.which("pg_autoctl") is None:
        raise SystemExit("pg_autoctl not found: apt-get install -y postgresql-15-auto-failover")
    base = Path(tempfile.mkdtemp(prefix="smsgw-failover-", dir="/tmp"))
    formation = Formation(base)
    gateway: Gateway | None = None
    failed = True
    try:
        started = time.monotonic()
        formation.create(fast=args.fast)
        url = formation.uri()
        shown = url.replace(formation.password, "***")
        print(f"formation ready in {time.monotonic() - started:.0f} s: {shown}", flush=True)
        gateway = Gateway(url, formation.logs)
        gateway.start()
        load, timeline = asyncio.run(drive(formation, gateway, args))
        held = verify(url, load)
        rows = report(load, timeline, held, gateway)
        width = max(len(k) for k, _ in rows)
        print()
        for key, value in rows:
            print(f"{key.ljust(width)}  {value}")
        failed = bool(held["violations"] or held["found"] != len(load.accepted) or load.abandoned)
        return 1 if failed else 0
    finally:
        if gateway is not None:
            gateway.stop()
        formation.destroy(keep=args.keep or failed)
        if args.keep or failed:
            print(f"data folders and logs kept in {base}")


if __name__ == "__main__":
    raise SystemExit(main())
