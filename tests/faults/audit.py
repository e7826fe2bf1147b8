"""After a fault: what became of every message a client saw accepted, and of the money.

Read from the scenario's database and the API, never from the suite's own bookkeeping
alone: a 202 the client saw must name a row; each row is held once and settled at most
once (one capture, never a capture and a release); no Idempotency-Key made two messages;
each tenant's `captured` balance is exactly the price of its messages that a provider
accepted; and the ledger invariant (`smsgw_ledger_violations_v1()`) is clean.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from tests.faults.load import LoadResult, Tenant

CAPTURED = ("sent", "delivered", "undelivered")
FINAL = ("delivered", "undelivered", "failed", "expired", "canceled")
# A lapsed lease is recovered within a few seconds (upkeep runs every 5 s).
LEASE_GRACE = timedelta(seconds=30)


@dataclass
class Outcome:
    fault: str
    accepted: int = 0
    sent_or_delivered: int = 0
    still_queued: int = 0
    ended_otherwise: int = 0  # failed, expired, undelivered: final without delivery
    lost: list[str] = field(default_factory=list)
    double_billed: list[str] = field(default_factory=list)
    # Rows that are neither final nor waiting for a reason their row shows.
    stranded: list[str] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    send_errors: Counter[str] = field(default_factory=Counter)
    receipt_errors: Counter[str] = field(default_factory=Counter)
    hangs: int = 0
    max_client_wait: float = 0.0
    unclean: list[str] = field(default_factory=list)
    given_up: int = 0
    crashed: list[str] = field(default_factory=list)
    # 'delivered' callbacks not heard yet whose outbox row shows a retry coming (a
    # claim of a killed worker lapsing), and those whose row shows nothing coming.
    callbacks_pending: int = 0
    callbacks_missing: list[str] = field(default_factory=list)
    upstream_duplicates: int = 0
    drained: bool = False
    notes: list[str] = field(default_factory=list)
    # What the fault met, for the tests to check that it hit (see scenarios.py).
    facts: dict[str, list[int]] = field(default_factory=dict)

    @property
    def client_errors(self) -> int:
        return sum(self.send_errors.values()) + sum(self.receipt_errors.values())

    def problems(self) -> list[str]:
        """Everything that breaks the contract; empty when the gateway held."""
        found = []
        if self.lost:
            found.append(f"lost (202 seen, no row): {self.lost[:5]}")
        if self.double_billed:
            found.append(f"double-billed: {self.double_billed[:5]}")
        if self.stranded:
            found.append(f"stranded without a reason: {self.stranded[:5]}")
        if self.violations:
            found.append(f"ledger invariant: {self.violations[:5]}")
        if self.hangs:
            found.append(f"{self.hangs} request(s) hung past the client timeout")
        if self.unclean:
            found.append(f"unclean answers: {Counter(self.unclean).most_common(5)}")
        if self.given_up:
            found.append(f"{self.given_up} send(s) never got a 202 within the retry budget")
        if self.crashed:
            found.append(f"processes exited on their own: {self.crashed}")
        if not self.drained:
            found.append(
                "not everything was delivered after the fault healed: "
                f"{self.still_queued} still queued, {self.ended_otherwise} ended otherwise"
            )
        if self.callbacks_missing:
            found.append(
                f"'delivered' callbacks neither sent nor coming: {self.callbacks_missing[:5]}"
            )
        return found


def errors_of(outcomes: Counter[str]) -> Counter[str]:
    """The failed attempts among ``outcomes`` (status codes, "conn", "timeout"): 5xx,
    connection errors and timeouts. 2xx are answers, and 429 a pace to keep."""
    return Counter({k: v for k, v in outcomes.items() if not k.startswith(("2", "429"))})


def _row_problem(row: dict[str, Any], now: datetime) -> str | None:
    """Why a message that is neither final nor sent shows no reason to wait, if so."""
    status = row["status"]
    if status in ("queued", "scheduled"):
        if row["next_attempt_at"] is None:
            return "queued without next_attempt_at"
        if row["attempts"] > 0 and row["error_code"] is None:
            return "retried without a last error"
        return None
    if status == "sending":
        lease = row["lease_expires_at"]
        if lease is None:
            return "sending without a lease"
        if lease + LEASE_GRACE < now:
            return "sending long past its lease"
    return None


async def audit(
    outcome: Outcome, db_url: str, base_url: str, tenants: list[Tenant], load: LoadResult
) -> None:
    async with await psycopg.AsyncConnection.connect(
        db_url, autocommit=True, row_factory=dict_row
    ) as conn:
        cursor = await conn.execute(
            """
            SELECT m.id::text AS id, m.tenant_id::text AS tenant_id, m.client_reference,
                   m.status, m.attempts, m.next_attempt_at, m.lease_expires_at,
                   m.error_code, m.price,
                   count(*) FILTER (WHERE e.kind = 'hold') AS holds,
                   count(*) FILTER (WHERE e.kind = 'capture') AS captures,
                   count(*) FILTER (WHERE e.kind = 'release') AS releases
              FROM messages m
              LEFT JOIN ledger_message_entries e
                ON e.message_id = m.id AND e.message_created_at = m.created_at
             GROUP BY m.id, m.created_at
            """
        )
        rows = await cursor.fetchall()
        cursor = await conn.execute("SELECT * FROM smsgw_ledger_violations_v1()")
        outcome.violations = [dict(r) for r in await cursor.fetchall()]
        cursor = await conn.execute("SELECT now() AS now")
        now_row = await cursor.fetchone()
    now = now_row["now"] if now_row else datetime.now(UTC)
    by_id = {row["id"]: row for row in rows}
    per_reference = Counter(row["client_reference"] for row in rows)

    outcome.accepted = len(load.accepted)
    for key, message_id in load.accepted.items():
        row = by_id.get(message_id)
        if row is None:
            outcome.lost.append(message_id)
            continue
        if row["client_reference"] != key:
            outcome.lost.append(f"{message_id} is not the message sent with key {key}")
        status = row["status"]
        if status in ("sent", "delivered"):
            outcome.sent_or_delivered += 1
        elif status in FINAL:
            outcome.ended_otherwise += 1
        else:
            outcome.still_queued += 1
            problem = _row_problem(row, now)
            if problem:
                outcome.stranded.append(f"{message_id}: {problem}")
    for row in rows:
        if per_reference[row["client_reference"]] > 1:
            outcome.double_billed.append(f"{row['id']}: one of several rows for one key")
        if row["holds"] != 1 or row["captures"] > 1 or row["captures"] + row["releases"] > 1:
            outcome.double_billed.append(
                f"{row['id']}: {row['holds']} holds, {row['captures']} captures, "
                f"{row['releases']} releases"
            )
    outcome.double_billed += [
        f"{key}: replays named two messages" for key in load.mismatched_replays
    ]

    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        for tenant in tenants:
            answer = await client.get(
                "/v1/balance", headers={"Authorization": f"Bearer {tenant.api_key}"}
            )
            answer.raise_for_status()
            captured = answer.json()["captured"]
            owed = sum(
                r["price"] for r in rows if r["tenant_id"] == tenant.id and r["status"] in CAPTURED
            )
            if captured != owed:
                outcome.double_billed.append(
                    f"tenant {tenant.id}: captured {captured}, sent messages cost {owed}"
                )

    outcome.send_errors = errors_of(load.stats.outcomes)
    outcome.hangs = load.stats.outcomes["timeout"]
    outcome.max_client_wait = load.stats.max_wait
    outcome.unclean = list(load.unclean)
    outcome.given_up = len(load.given_up)
