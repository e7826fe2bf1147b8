"""Status callbacks and inbound messages: POST each outbox row to the tenant's URL, signed
(``kind``: 'status' and 'inbound' as JSON with X-Smsgw-Signature, 'twilio_status' in
Twilio's form with X-Twilio-Signature).

Runs on its own queue, with short timeouts and bounded concurrency, so that a tenant's
slow or dead endpoint costs that tenant retries and nobody else any delivery time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec
import procrastinate
import structlog

from core import callbacks, twilio
from core.retry import Backoff
from db import Row
from db import callbacks as callbacks_db
from jobs.context import WorkerDeps, deps_of
from jobs.webhook_transport import DestinationNotAllowed

log = structlog.get_logger("smsgw.callbacks")

QUEUE = "callbacks"
BATCH = 200
LEASE_SECONDS = 30.0
CONCURRENCY = 100
# One run drains batches for about this long; the next periodic run picks up after.
RUN_SECONDS = 0.9


def _request(row: Row) -> tuple[bytes, dict[str, str]] | None:
    """The body and headers of one outbox row: JSON signed with the tenant's webhook
    secret (status callbacks, inbound messages), or for a message made through the
    Twilio facade, Twilio's form signed with X-Twilio-Signature (None: no account)."""
    if row.get("kind") == "twilio_status":
        token, account_sid = row["twilio_auth_token"], row["twilio_account_sid"]
        if token is None or account_sid is None:
            return None
        params = twilio.status_callback(row["payload"], account_sid=account_sid)
        return urlencode(params).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "smsgw-callbacks/1",
            twilio.SIGNATURE_HEADER: twilio.signature(token, row["url"], params),
        }
    body = msgspec.json.encode(row["payload"])
    return body, {
        "Content-Type": "application/json",
        "User-Agent": "smsgw-callbacks/1",
        callbacks.SIGNATURE_HEADER: callbacks.sign(row["webhook_secret"], body, int(time.time())),
    }


@dataclass(frozen=True, slots=True)
class Attempt:
    status_code: int | None
    error: str | None
    latency_ms: int | None
    # The destination is forbidden: trying again would be refused again.
    final: bool = False


async def _post(
    http: httpx.AsyncClient, row: Row, limit: asyncio.Semaphore, seconds: float
) -> Attempt:
    request = _request(row)
    if request is None:
        return Attempt(None, "no Twilio account to sign with", None)
    body, headers = request
    async with limit:
        started = time.perf_counter()
        try:
            response = await http.post(
                row["url"],
                content=body,
                headers=headers,
                timeout=httpx.Timeout(seconds, connect=min(seconds, 2.0)),
            )
        except DestinationNotAllowed as exc:
            return Attempt(None, str(exc), None, final=True)
        except Exception as exc:
            # Not only httpx.HTTPError: a URL the client cannot use (an IDNA host like
            # "xn--", a port out of range) raises InvalidURL, IDNAError or an
            # ExceptionGroup. It is this callback's failure, retried with backoff; let
            # through, it would fail the whole batch, other tenants' callbacks with it.
            return Attempt(None, type(exc).__name__, _since(started))
    latency = _since(started)
    if response.is_success:
        return Attempt(response.status_code, None, latency)
    error = f"HTTP {response.status_code}"
    if response.is_redirect:
        error += " (redirects are not followed)"
    return Attempt(response.status_code, error, latency)


def _since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


async def deliver_batch(deps: WorkerDeps, outcomes: Counter[str] | None = None) -> int:
    """Claim and attempt one batch; returns how many were attempted, and counts each
    attempt's outcome (delivered, retry, abandoned) in ``outcomes``."""
    async with deps.pool.connection() as conn, conn.transaction():
        rows = await callbacks_db.claim(conn, limit=BATCH, lease_seconds=LEASE_SECONDS)
    if not rows:
        return 0
    limit = asyncio.Semaphore(CONCURRENCY)
    timeout = deps.settings.callback_timeout_seconds
    answers = await asyncio.gather(*(_post(deps.http, row, limit, timeout) for row in rows))
    backoff = Backoff(
        base_seconds=deps.settings.callback_retry_base_seconds,
        cap_seconds=deps.settings.callback_retry_cap_seconds,
        jitter=0.5,
    )
    now = datetime.now(UTC)
    results: dict[str, list[Any]] = {
        "ids": [],
        "created_ats": [],
        "outcomes": [],
        "status_codes": [],
        "errors": [],
        "next_attempt_ats": [],
        "latencies_ms": [],
    }
    for row, attempt in zip(rows, answers, strict=True):
        status_code, error = attempt.status_code, attempt.error
        if attempt.final:
            decision = callbacks.AttemptOutcome("abandoned", None)
        else:
            decision = callbacks.after_attempt(
                backoff=backoff,
                succeeded=error is None,
                attempts=row["attempts"],
                created_at=row["created_at"],
                now=now,
            )
        results["ids"].append(row["id"])
        results["created_ats"].append(row["created_at"])
        results["outcomes"].append(decision.outcome)
        results["status_codes"].append(status_code)
        results["errors"].append(error)
        results["next_attempt_ats"].append(decision.next_attempt_at)
        results["latencies_ms"].append(attempt.latency_ms)
        if outcomes is not None:
            outcomes[decision.outcome] += 1
        if decision.outcome != "delivered":
            log.info(
                "callback.failed",
                tenant_id=str(row["tenant_id"]),
                message_id=str(row["message_id"]),
                attempts=row["attempts"],
                status_code=status_code,
                error=error,
                outcome=decision.outcome,
            )
    async with deps.pool.connection() as conn, conn.transaction():
        await callbacks_db.finish(conn, results=results)
    return len(rows)


def register(app: procrastinate.App) -> None:
    @app.periodic(cron="* * * * * *", periodic_id="callbacks")
    @app.task(name="smsgw.deliver_callbacks", queue=QUEUE, pass_context=True)
    async def deliver_callbacks(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)
        deadline = time.monotonic() + RUN_SECONDS
        outcomes: Counter[str] = Counter()
        while time.monotonic() < deadline:
            if await deliver_batch(deps, outcomes) < BATCH:
                break
        # One line a run that attempted callbacks (a failed one has its own
        # `callback.failed` line too); none when idle.
        if outcomes:
            log.info(
                "callbacks.delivered",
                delivered=outcomes["delivered"],
                retrying=outcomes["retry"],
                abandoned=outcomes["abandoned"],
            )

    del deliver_callbacks
