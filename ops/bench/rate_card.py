"""A rate card of the size of a real international one (50,000 prefixes), generated from
the dialing prefixes the project ships (db/schema.sql) with network ranges under the big
countries, for the benchmark's card phases: the same load as the flat-price phases, the
tenants on this card (issue 23: within 5% of the flat price).

    python -m ops.bench.rate_card [--count 50000] [--seed 0] > card.csv

``install`` imports it with `smsgw rates import` (timed: the import and a dry run of
another card against it), and puts the bench tenants on it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from smsgw.processes import smsgw_command

SCHEMA = Path(__file__).resolve().parents[2] / "db" / "schema.sql"
_ROW = re.compile(r"\('\+(\d+)', '([A-Z]{2})'\)")
# The big countries, whose numbers are split into network ranges (a prefix and 1-4 more
# digits), in turn until the card is full.
BIG = ("1", "44", "49", "33", "39", "34", "91", "86", "55", "52", "7", "81", "62", "234")
# The bench sends to +14155552671 (ops/bench/bodies.py: TO): its longest match is deep.
BENCH_RANGE = "1415555"


def shipped_prefixes() -> dict[str, str]:
    """Digits -> ISO country, as the baseline's INSERT INTO dialing_prefixes has them."""
    return dict(_ROW.findall(SCHEMA.read_text("utf-8")))


def _price(prefix: str, seed: int) -> int:
    # Deterministic and spread like real costs: 1,000 to 400,000 micro-units a segment.
    digest = hashlib.sha256(f"{seed}:{prefix}".encode()).digest()
    return 1_000 + int.from_bytes(digest[:4], "big") % 399_000


def _ranges(country: str) -> Iterator[str]:
    for width in (1, 2, 3, 4):
        for n in range(10**width):
            yield f"{country}{n:0{width}d}"


def _country(prefix: str, countries: dict[str, str]) -> str:
    for length in range(len(prefix), 0, -1):
        found = countries.get(prefix[:length])
        if found:
            return found
    return ""


def generate(count: int = 50_000, *, seed: int = 0) -> str:
    """The card as CSV (`prefix,country,network,price`), ``count`` rows; another
    ``seed`` gives the same prefixes at other prices."""
    countries = shipped_prefixes()
    chosen: dict[str, str] = {}
    for prefix in sorted(countries):
        chosen[prefix] = ""
    chosen[BENCH_RANGE] = "bench range"
    generators = [_ranges(c) for c in BIG]
    while len(chosen) < count:
        for gen in generators:
            prefix = next(gen)
            chosen.setdefault(prefix, f"network {prefix}")
            if len(chosen) >= count:
                break
    lines = ["prefix,country,network,price"]
    lines += [
        f"{prefix},{_country(prefix, countries)},{network},{_price(prefix, seed)}"
        for prefix, network in sorted(chosen.items())[:count]
    ]
    return "\n".join(lines) + "\n"


def install(
    base_url: str,
    database_url: str,
    admin_token: str,
    tenant_ids: Sequence[str],
    *,
    workdir: Path,
    count: int = 50_000,
) -> dict[str, float]:
    """Import the card as `bench` (a new version) with `smsgw rates import`, time it and
    a dry run of another card against it, and put the tenants on it. The import runs in
    a process of its own, as an operator's would, not in the gateway's API processes
    that the phase then measures: a 2.3 MB file parsed by an API process just before its
    10 s window is a transient of the bench's order, not a cost of pricing by a card.
    Returns the figures (their times include the command's start, ~0.5 s)."""
    first, second = workdir / "card.csv", workdir / "card-2.csv"
    first.write_text(generate(count, seed=0))
    second.write_text(generate(count, seed=1))
    env = {**os.environ, "DATABASE_URL": database_url, "SMSGW_LOG_LEVEL": "WARNING"}
    timed: list[float] = []
    for path, extra in ((first, []), (second, ["--dry-run"])):
        started = time.perf_counter()
        done = subprocess.run(
            smsgw_command("rates", "import", "bench", str(path), *extra),
            env=env,
            capture_output=True,
            text=True,
        )
        timed.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"smsgw rates import: {done.stderr}")
        if not extra:
            rows = float(json.loads(done.stdout)["rates"])
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=base_url, timeout=120) as client:
        for tenant_id in tenant_ids:
            client.patch(
                f"/v1/admin/tenants/{tenant_id}", json={"rate_card": "bench"}, headers=headers
            ).raise_for_status()
    return {"card_rows": rows, "card_import_seconds": timed[0], "card_dry_run_seconds": timed[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.stdout.write(generate(args.count, seed=args.seed))


if __name__ == "__main__":
    main()
