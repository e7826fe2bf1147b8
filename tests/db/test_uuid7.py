"""Callback ids are UUIDv7 made by the database (smsgw_uuid7_v1, migration 0023): valid
UUIDs of version 7 whose time is when the row was written, so new rows' keys sort after
older ones."""

from __future__ import annotations

import uuid
from datetime import timedelta

from core import ids


async def test_a_callbacks_id_is_a_uuid7_of_when_it_was_written(conn):
    cursor = await conn.execute(
        "INSERT INTO callbacks (tenant_id, message_id, url, payload, kind)"
        " VALUES (%s, %s, 'https://hooks.example.com/sms', '{}', 'status')"
        " RETURNING id, created_at, clock_timestamp() AS written",
        (uuid.uuid4(), uuid.uuid4()),
    )
    row = await cursor.fetchone()
    assert ids.is_uuid7(row["id"])
    # created_at is the transaction's start; the id's millisecond is the row's own.
    assert row["created_at"] - timedelta(milliseconds=1) <= ids.created_at(row["id"])
    assert ids.created_at(row["id"]) <= row["written"]


async def test_uuid7s_are_distinct_and_in_the_order_they_were_made(conn):
    cursor = await conn.execute(
        "SELECT g, smsgw_uuid7_v1() AS id, pg_sleep(0.001) FROM generate_series(1, 200) g"
    )
    made = [row["id"] for row in await cursor.fetchall()]
    assert len(set(made)) == len(made)
    assert all(ids.is_uuid7(value) for value in made)
    times = [ids.created_at(value) for value in made]
    assert times == sorted(times)
    assert times[-1] > times[0]  # 200 rows a millisecond apart span milliseconds
