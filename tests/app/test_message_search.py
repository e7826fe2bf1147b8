"""Searching a tenant's messages (`GET /v1/messages` and the console's list, one core
function): by recipient and by status, a keyset page at a time, right on every call
once the statements are prepared, and reading only what a page needs however long the
tenant's history (ops/bench/console.py measures it at 10M messages)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from psycopg import sql

from db.sql import queries
from tests import support
from tests.support import OTHER_TO, VALID_TO

NAMED = re.compile(r"%\((\w+)\)s")


async def _walk(api, tenant, **filters: str) -> list[str]:
    """Every page of 2 with these filters, following the cursors; the ids in order."""
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **filters, **({"cursor": cursor} if cursor else {})}
        answer = await api.get("/v1/messages", params=params, headers=tenant.headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += [m["id"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


async def _sent(api, tenant, recipients: list[str]) -> list[str]:
    """One batch, a message to each recipient; their ids."""
    batch = [{"to": to, "body": f"m{i}"} for i, to in enumerate(recipients)]
    answer = await api.post("/v1/messages/batch", json={"messages": batch}, headers=tenant.headers)
    assert answer.status_code == 202, answer.text
    return [m["id"] for m in answer.json()["messages"]]


def _newest_first(ids: list[str]) -> list[str]:
    # created_at is the id's millisecond (UUIDv7): the order of (created_at, id).
    return sorted(ids, key=uuid.UUID, reverse=True)


async def test_searches_by_recipient_and_status_page_through_every_match_once(api, tenant):
    to_valid = await _sent(api, tenant, [VALID_TO] * 12)
    to_other = await _sent(api, tenant, [OTHER_TO] * 5)
    canceled = [to_valid[1], to_valid[4], to_other[2]]
    for message_id in canceled:
        answer = await api.post(f"/v1/messages/{message_id}/cancel", headers=tenant.headers)
        assert answer.status_code == 200, answer.text

    # Three rounds: the same statements run often enough on a connection to be prepared,
    # and the server's plan for them to be its generic one; the answers stay the same.
    for _ in range(3):
        assert await _walk(api, tenant, to=OTHER_TO) == _newest_first(to_other)
        assert await _walk(api, tenant, status="canceled") == _newest_first(canceled)
        assert await _walk(api, tenant, to=VALID_TO, status="canceled") == _newest_first(
            canceled[:2]
        )
        assert await _walk(api, tenant, status="failed") == []
        assert await _walk(api, tenant, to="+14155550000") == []
        assert await _walk(api, tenant) == _newest_first(to_valid + to_other)


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _plan_nodes(child))]


async def _rows_read(conn, name: str, params: dict[str, Any]) -> tuple[int, int]:
    """The named statement's generic plan (as a prepared statement settles on) run under
    EXPLAIN ANALYZE: the message rows its scans returned, and those they read only to
    throw away (removed by a filter)."""
    names: list[str] = []

    def positional(found: re.Match[str]) -> str:
        if found[1] not in names:
            names.append(found[1])
        return f"${names.index(found[1]) + 1}"

    text = NAMED.sub(positional, queries("messages")[name])
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute(f"PREPARE searched AS {text}")
    try:
        arguments = sql.SQL(", ").join(sql.Literal(params[n]) for n in names)
        cursor = await conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE searched({})").format(arguments)
        )
        row = await cursor.fetchone()
    finally:
        await conn.execute("DEALLOCATE searched")
        await conn.execute("RESET plan_cache_mode")
    scans = [
        n
        for n in _plan_nodes(row["QUERY PLAN"][0]["Plan"])
        if n.get("Relation Name", "").startswith("messages")
    ]
    assert scans, row
    return (
        sum(int(n["Actual Rows"]) * int(n.get("Actual Loops", 1)) for n in scans),
        # Both are averages per loop (a scan per message found, in a search by recipient).
        sum(int(n.get("Rows Removed by Filter", 0)) * int(n.get("Actual Loops", 1)) for n in scans),
    )


def _first_page(tenant) -> dict[str, Any]:
    """A search's parameters for the tenant's first page of 51, no window."""
    return {
        "tenant_id": uuid.UUID(tenant.id),
        "created_after": None,
        "created_before": None,
        "before_created_at": None,
        "before_id": None,
        "limit": 51,
    }


async def test_a_search_reads_only_the_messages_of_its_page(api, tenant, conn):
    await _sent(api, tenant, [VALID_TO] * 300)
    window = _first_page(tenant)
    # Statuses the tenant has none of, through the partial index: nothing read.
    for status in ("failed", "canceled", "sent"):
        assert await _rows_read(
            conn, "list_messages_rare_status", {**window, "status": status}
        ) == (0, 0), status
    # Queued and scheduled ones come from the tenant's backlog (messages_due_idx).
    assert await _rows_read(conn, "list_messages_waiting", {**window, "status": "queued"}) == (
        51,
        0,
    )
    returned, discarded = await _rows_read(
        conn, "list_messages_waiting", {**window, "status": "scheduled"}
    )
    assert (returned, discarded) == (0, 300)  # the backlog, whatever the history


async def test_a_page_after_a_cursor_reads_from_the_cursor_on(api, tenant, conn):
    # One send each, so that (nearly) every message has a millisecond of its own.
    sent = [(await support.send(api, tenant, body=f"m{i}")).json()["id"] for i in range(40)]
    middle = uuid.UUID(_newest_first(sent)[20])
    row = await (
        await conn.execute("SELECT created_at FROM messages WHERE id = %s", (middle,))
    ).fetchone()
    same_ms = await support.count(
        conn, "SELECT count(*) AS n FROM messages WHERE created_at = %s", row["created_at"]
    )
    page = {
        "tenant_id": uuid.UUID(tenant.id),
        "created_after": None,
        "created_before": None,
        "before_created_at": row["created_at"],
        "before_id": middle,
        "limit": 11,
    }
    # The 20 newer messages are not read and thrown away; only those of the cursor's
    # own millisecond can be, the cursor's message included.
    returned, discarded = await _rows_read(conn, "list_messages", page)
    assert returned == 11
    assert discarded <= same_ms


async def _index_everything(conn) -> int:
    """What the periodic job does a few minutes later, up to this instant."""
    cursor = await conn.execute("SELECT smsgw_index_recipients_v1(clock_timestamp()) AS n")
    return (await cursor.fetchone())["n"]


async def test_a_search_by_recipient_reads_only_that_recipients_messages(api, tenant, conn):
    # The recipient's messages are the oldest of the tenant's history: a walk of the
    # history newest first would read the 300 others before reaching them.
    theirs = await _sent(api, tenant, [OTHER_TO] * 3)
    await _sent(api, tenant, [VALID_TO] * 300)
    window = _first_page(tenant)
    search = {**window, "to_number": OTHER_TO, "status": None}
    # Not indexed yet: found by walking the newest messages.
    assert await _walk(api, tenant, to=OTHER_TO) == _newest_first(theirs)

    assert await _index_everything(conn) == 303
    assert await _rows_read(conn, "list_messages_to", search) == (3, 0)
    # A status none of them has: their three read and put aside, nothing else.
    assert await _rows_read(conn, "list_messages_to", {**search, "status": "failed"}) == (0, 3)
    assert await _rows_read(conn, "list_messages_to", {**search, "to_number": "+14155550000"}) == (
        0,
        0,
    )
    assert await _walk(api, tenant, to=OTHER_TO) == _newest_first(theirs)
    # Newer ones not indexed yet: pages run from the walk into the index, each once.
    newer = await _sent(api, tenant, [OTHER_TO] * 2)
    assert await _walk(api, tenant, to=OTHER_TO) == _newest_first(theirs + newer)
    assert await _walk(api, tenant, to=OTHER_TO, status="queued") == _newest_first(theirs + newer)
    assert await _index_everything(conn) == 2
    assert await _walk(api, tenant, to=OTHER_TO) == _newest_first(theirs + newer)
