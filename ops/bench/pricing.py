"""The database's cost of pricing by destination: a batch accept (smsgw_accept_v7, 1,000
messages) for a tenant on the flat price against one on a 50,000-prefix card
(ops/bench/rate_card.py), alternating on one server, so both see the same machine.

Two kinds of traffic: every message to one number (what the bench's phases send), and
numbers spread over the US (what a real batch looks like: each message probes another
part of the card's index). Prints, per kind, the medians of ``--rounds`` (40) calls of
each: the backend's CPU per message (/proc/<pid>/schedstat) and the card's share of the
accept (card / flat). The whole ingest of a message costs about three times what its
accept costs in the database (the API's parse and validation), so the share of the
whole is about a third of the difference printed here.

    nice -n 10 .venv/bin/python -m ops.bench.pricing [--rounds 40]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from core import ids
from ops.bench import rate_card
from ops.bench.bodies import us_numbers
from ops.bench.server_stats import backend_cpu_ns
from ops.bench.system import TEMPLATE, Cluster, gateway_env
from smsgw.processes import smsgw_command

BATCH = 1_000
ACCEPT = "SELECT accepted FROM smsgw_accept_v7(%s, NULL, %s::json, 'standard', NULL, true)"


def _batch(numbers: list[str], expires: str) -> str:
    ms = int(time.time() * 1000)
    return json.dumps(
        [
            {
                "id": str(m),
                "created_at": ids.created_at(m).isoformat(),
                "status": "queued",
                "to_number": number,
                "sender": None,
                "body": "bench message",
                "encoding": "GSM-7",
                "segments": 1,
                "price": None,
                "to_country": "US",
                "expires_at": expires,
            }
            for i, number in enumerate(numbers)
            for m in (ids.uuid7(ms, i),)
        ]
    )


def _tenants(conn: psycopg.Connection) -> dict[str, uuid.UUID]:
    made = {}
    for kind in ("flat", "card"):
        made[kind] = uuid.uuid4()
        conn.execute(
            "INSERT INTO tenants (id, name, tier, price_per_segment, webhook_secret)"
            " VALUES (%s, %s, 'standard', 7900, 'secret')",
            (made[kind], kind),
        )
        conn.execute(
            "INSERT INTO balances (tenant_id, credits, available) VALUES (%s, 10^15, 10^15)",
            (made[kind],),
        )
    conn.execute(
        "UPDATE tenants SET rate_card_id = (SELECT id FROM rate_cards WHERE name = 'bench')"
        " WHERE id = %s",
        (made["card"],),
    )
    conn.execute("VACUUM ANALYZE")
    return made


def measure(url: str, rounds: int) -> None:
    expires = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    rng = random.Random(0)

    def one_number() -> list[str]:
        return ["+14155552671"] * BATCH

    def spread() -> list[str]:
        return us_numbers(BATCH, rng)

    kinds = {"one number": one_number, "spread over the US": spread}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # the commit's flush is no pricing
        tenants = _tenants(conn)
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        pid = row[0]
        for kind, numbers in kinds.items():
            cpu: dict[str, list[float]] = {"flat": [], "card": []}
            for r in range(rounds + 4):  # the first four warm the caches and plans
                for who in ("flat", "card") if r % 2 else ("card", "flat"):
                    body = _batch(numbers(), expires)
                    before = backend_cpu_ns(pid)
                    accepted = conn.execute(ACCEPT, (tenants[who], body)).fetchone()
                    assert accepted is not None
                    assert accepted[0] == BATCH, accepted
                    if r >= 4:
                        cpu[who].append((backend_cpu_ns(pid) - before) / 1e3 / BATCH)
            flat, card = statistics.median(cpu["flat"]), statistics.median(cpu["card"])
            print(
                f"{kind}: backend CPU per message {flat:.1f} us flat, {card:.1f} us on the"
                f" card (+{card - flat:.1f} us, {card / flat:.2f}x the accept)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="smsgw-pricing-", dir="/tmp"))
    root.chmod(0o755)  # the embedded server runs as `postgres` when we are root
    cluster = Cluster(root, logs=root / "logs", profile_sql=False)
    try:
        cluster.start()
        url = cluster.server.url(TEMPLATE)
        card = root / "card.csv"
        card.write_text(rate_card.generate(50_000))
        subprocess.run(
            smsgw_command("rates", "import", "bench", str(card)),
            env={**gateway_env(url, latency_ms=0), "SMSGW_LOG_LEVEL": "WARNING"},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        measure(url, args.rounds)
    finally:
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
