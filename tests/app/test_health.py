"""/ready answers 200 only when the database answers and its schema is this code's."""

from __future__ import annotations

from tests import support


async def test_ready_on_the_current_schema(api):
    response = await api.get("/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_not_ready_on_a_database_of_the_pre_release_history(api, conn):
    await conn.execute("DELETE FROM smsgw_migrations")
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO smsgw_migrations (version, name) VALUES (%s, %s)",
            support.PRE_RELEASE_HISTORY,
        )
    response = await api.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "pre-release smsgw" in body["detail"]
    assert "recreated" in body["detail"]


async def test_not_ready_on_a_schema_behind_the_code(api, conn):
    await conn.execute("DELETE FROM smsgw_migrations")
    response = await api.get("/ready")
    assert response.status_code == 503
    assert "code expects" in response.json()["detail"]
