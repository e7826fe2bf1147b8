"""Status callbacks and inbound messages: POST each outbox row to the tenant's URL, signed
(``kind``: 'status' and 'inbound' as JSON with X-Smsgw-Signature, 'twilio_status' in
Twilio's form with X-Twilio-Signature).

Runs on its own queue, with short timeouts and bounded concurrency, so that a tenant's
slow or dead endpoint costs that tenant retries and nobody else any delivery time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import msgspec
import procrastinate
import structlog
from procrastinate.exceptions import AlreadyEnqueued

from core import callbacks, tenants, twilio, twilio_inbound
from core.errors import DomainError
from core.retry import Backoff
from db import Row
from db import callbacks as callbacks_db
from jobs.context import WorkerDeps, deps_of
from jobs.webhook_transport import DestinationNotAllowed, WebhookClient

log = structlog.get_logger("smsgw.callbacks")

QUEUE = "callbacks"
# A run beside the periodic one, asked for while a backlog lasts (settings.callback_jobs).
MORE_TASK = "smsgw.deliver_more_callbacks"
BATCH = 200
LEASE_SECONDS = 30.0
CONCURRENCY = 100
# One run drains batches for about this long; the next periodic run picks up after.
RUN_SECONDS = 0.9
# Batches in flight at once (SKIP LOCKED gives each its own rows): while one lane claims
# or records its batch in the database, the other's requests are out.
LANES = 2
# A status callback's answer is read and dropped up to this, so the connection stays.
MAX_IGNORED_BYTES = 64 * 1024


def _request(row: Row) -> tuple[bytes, dict[str, str]] | None:
    """The body and headers of one outbox row: JSON signed with the tenant's webhook
    secret (status callbacks, inbound messages), or for a message made through the
    Twilio facade or an inbound message of a tenant on Twilio's format, Twilio's form
    signed with X-Twilio-Signature (None: no account)."""
    kind = row.get("kind")
    if kind in ("twilio_status", "twilio_inbound"):
        token, account_sid = row["twilio_auth_token"], row["twilio_account_sid"]
        if token is None or account_sid is None:
            return None
        payload = msgspec.json.decode(row["body"])
        if kind == "twilio_inbound":
            params = twilio_inbound.incoming_message(payload, account_sid=account_sid)
        else:
            params = twilio.status_callback(payload, account_sid=account_sid)
        return urlencode(params).encode(), {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "smsgw-callbacks/1",
            twilio.SIGNATURE_HEADER: twilio.signature(token, row["url"], params),
        }
    body = row["body"].encode()  # the outbox's JSON as it is, signed as sent
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
    # A Twilio-format inbound webhook's answer (TwiML), when it had one.
    answer: bytes = b""


async def _post(
    http: WebhookClient, row: Row, limit: asyncio.Semaphore, within: aiohttp.ClientTimeout
) -> Attempt:
    request = _request(row)
    if request is None:
        return Attempt(None, "no Twilio account to sign with", None)
    body, headers = request
    async with limit:
        started = time.perf_counter()
        try:
            async with http.post(
                row["url"],
                data=body,
                headers=headers,
                timeout=within,
            ) as response:
                status = response.status
                answer = await _answer(response, wanted=row.get("kind") == "twilio_inbound")
        except DestinationNotAllowed as exc:
            return Attempt(None, str(exc), None, final=True)
        except Exception as exc:
            # Not only aiohttp.ClientError: a URL the client cannot use (an IDNA host
            # like "xn--", a port out of range) raises InvalidURL or ValueError, a slow
            # endpoint TimeoutError. It is this callback's failure, retried with backoff;
            # let through, it would fail the whole batch, other tenants' callbacks with it.
            return Attempt(None, _failure(exc), _since(started))
    latency = _since(started)
    if 200 <= status < 300:
        return Attempt(status, None, latency, answer=answer)
    error = f"HTTP {status}"
    if 300 <= status < 400:
        error += " (redirects are not followed)"
    return Attempt(status, error, latency)


def _failure(exc: Exception) -> str:
    """What a tenant reads of a request that got no answer: the same names whatever the
    HTTP client (they were httpx's before aiohttp)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "ConnectTimeout"
    if isinstance(exc, TimeoutError):  # the whole attempt's time ran out waiting
        return "ReadTimeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "ConnectError"
    return type(exc).__name__


async def _answer(response: aiohttp.ClientResponse, *, wanted: bool) -> bytes:
    """The body of a response, kept when ``wanted`` (up to one byte over
    twilio_inbound.MAX_TWIML_BYTES, which tells the parser it was cut); otherwise read
    and dropped, so the connection can be kept, up to MAX_IGNORED_BYTES."""
    if wanted:
        kept = bytearray()
        most = twilio_inbound.MAX_TWIML_BYTES + 1
        while len(kept) < most and (chunk := await response.content.read(most - len(kept))):
            kept += chunk
        return bytes(kept)
    dropped = 0
    while chunk := await response.content.read(64 * 1024):
        dropped += len(chunk)
        if dropped > MAX_IGNORED_BYTES:
            # An endpoint that streams without end: drop the connection.
            response.close()
            break
    return b""


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
    seconds = deps.settings.callback_timeout_seconds
    timeout = aiohttp.ClientTimeout(total=seconds, connect=min(seconds, 2.0))
    answers = await asyncio.gather(*(_post(deps.http, row, limit, timeout) for row in rows))
    backoff = Backoff(
        base_seconds=deps.settings.callback_retry_base_seconds,
        cap_seconds=deps.settings.callback_retry_cap_seconds,
        jitter=0.5,
    )
    now = datetime.now(UTC)
    results: list[dict[str, Any]] = []
    # (position in results, outbox row, its TwiML replies) of answered Twilio webhooks.
    replies: list[tuple[int, Row, list[twilio_inbound.Reply]]] = []
    for position, (row, attempt) in enumerate(zip(rows, answers, strict=True)):
        status_code, error = attempt.status_code, attempt.error
        if attempt.answer and error is None:
            try:
                if twiml := twilio_inbound.parse_twiml(attempt.answer):
                    replies.append((position, row, twiml))
            except twilio_inbound.TwimlError as exc:
                # Delivered all the same; the tenant reads why its answer was not sent.
                error = f"TwiML answer not used: {exc}"
        if attempt.final:
            decision = callbacks.AttemptOutcome("abandoned", None)
        else:
            decision = callbacks.after_attempt(
                backoff=backoff,
                succeeded=attempt.error is None,
                attempts=row["attempts"],
                created_at=row["created_at"],
                now=now,
            )
        results.append(
            {
                "id": row["id"],
                "created_at": row["created_at"],
                "outcome": decision.outcome,
                "status_code": status_code,
                "error": error,
                "next_attempt_at": decision.next_attempt_at,
                "latency_ms": attempt.latency_ms,
            }
        )
        if outcomes is not None:
            outcomes[decision.outcome] += 1
        if decision.outcome != "delivered" and not attempt.final:
            log.info(
                "callback.failed",
                tenant_id=str(row["tenant_id"]),
                message_id=str(row["message_id"]),
                attempts=row["attempts"],
                status_code=status_code,
                error=error,
                outcome=decision.outcome,
            )
        elif attempt.final:
            log.warning(
                "callback.destination_refused",
                tenant_id=str(row["tenant_id"]),
                message_id=str(row["message_id"]),
                error=error,
            )
    await _finish(deps, results, replies)
    return len(rows)


async def _finish(
    deps: WorkerDeps,
    results: list[dict[str, Any]],
    replies: list[tuple[int, Row, list[twilio_inbound.Reply]]],
) -> None:
    """Record the attempts, and accept the TwiML replies in the same transaction: a
    webhook recorded as delivered has its replies accepted, once (a crash before the
    commit retries the webhook, and the replies with it)."""
    async with deps.pool.connection() as conn, conn.transaction():
        for position, row, twiml in replies:
            tenant, _ = await tenants.get_tenant(conn, tenant_id=row["tenant_id"])
            for reply in twiml:
                try:
                    # A savepoint: a refused reply takes nothing else with it.
                    async with conn.transaction():
                        await twilio_inbound.accept_reply(
                            conn,
                            tenant=tenant,
                            inbound=msgspec.json.decode(row["body"]),
                            reply=reply,
                            scheduler=deps.scheduler,
                        )
                except DomainError as exc:
                    results[position]["error"] = f"TwiML reply not sent: {exc.code}: {exc.detail}"
                    log.info(
                        "callback.twiml_reply_refused",
                        tenant_id=str(row["tenant_id"]),
                        message_id=str(row["message_id"]),
                        code=exc.code,
                    )
        await callbacks_db.finish(conn, attempts=results)


async def _run(
    deps: WorkerDeps, run: str, ask_for_more: Callable[[], Awaitable[None]] | None
) -> None:
    """One run (``run``: "periodic" or "more", as its log line says): LANES lanes drain
    batches for RUN_SECONDS. ``ask_for_more`` is awaited once, when a lane's batch comes
    back full (more are waiting than it takes)."""
    deadline = time.monotonic() + RUN_SECONDS
    outcomes: Counter[str] = Counter()
    asked = False

    async def lane() -> None:
        nonlocal asked
        while time.monotonic() < deadline:
            if await deliver_batch(deps, outcomes) < BATCH:
                return
            if ask_for_more is not None and not asked:
                asked = True
                await ask_for_more()

    await asyncio.gather(*(lane() for _ in range(LANES)))
    # One line a run that attempted callbacks (a failed one has its own
    # `callback.failed` line too); none when idle.
    if outcomes:
        log.info(
            "callbacks.delivered",
            run=run,
            delivered=outcomes["delivered"],
            retrying=outcomes["retry"],
            abandoned=outcomes["abandoned"],
        )


def register(app: procrastinate.App) -> None:
    @app.task(name=MORE_TASK, queue=QUEUE, pass_context=True)
    async def deliver_more_callbacks(context: procrastinate.JobContext, slot: int) -> None:
        await _run(deps_of(context), "more", None)

    @app.periodic(cron="* * * * * *", periodic_id="callbacks")
    @app.task(name="smsgw.deliver_callbacks", queue=QUEUE, pass_context=True)
    async def deliver_callbacks(context: procrastinate.JobContext, timestamp: int) -> None:
        deps = deps_of(context)

        async def ask_for_more() -> None:
            # Per slot, at most one run waits (the queueing lock) and one runs (the
            # lock: a slot's next run starts when its last has ended): a backlog that
            # lasts keeps `callback_jobs` runs busy, and no more.
            for slot in range(1, deps.settings.callback_jobs):
                name = f"callbacks:more:{slot}"
                with contextlib.suppress(AlreadyEnqueued):
                    await deliver_more_callbacks.configure(
                        queueing_lock=name, lock=name
                    ).defer_async(slot=slot)

        await _run(deps, "periodic", ask_for_more)

    del deliver_callbacks
