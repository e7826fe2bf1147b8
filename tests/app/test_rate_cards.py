"""Rate cards in and out as CSV: versions, the dry run's diff, the export, and a file
refused whole with every problem by line number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests import support
from tests.app.rate_cards import WORLD, import_card
from tests.support import assert_problem


async def test_an_import_makes_a_version_that_exports_as_it_came(api, admin_headers):
    imported = await import_card(api, admin_headers, "world", WORLD)
    assert imported.status_code == 201, imported.text
    body = imported.json()
    assert (body["card"], body["version"], body["rates"]) == ("world", 1, 3)
    exported = await api.get("/v1/admin/rate-cards/world/versions/1.csv", headers=admin_headers)
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.text == WORLD
    current = await api.get(
        "/v1/admin/rate-cards/world/versions/current.csv", headers=admin_headers
    )
    assert current.text == WORLD
    missing = await api.get("/v1/admin/rate-cards/world/versions/2.csv", headers=admin_headers)
    assert_problem(missing, 404, "not_found")


async def test_the_card_lists_its_versions_and_the_one_in_effect(api, admin_headers):
    assert (await import_card(api, admin_headers, "world", WORLD)).status_code == 201
    later = datetime.now(UTC) + timedelta(days=1)
    scheduled = await import_card(
        api, admin_headers, "world", WORLD + "33,FR,,20000\n", effective_at=later.isoformat()
    )
    assert scheduled.status_code == 201
    card = (await api.get("/v1/admin/rate-cards/world", headers=admin_headers)).json()
    assert card["name"] == "world"
    assert card["current_version"] == 1  # version 2 is yet to come
    assert [(v["version"], v["rates"]) for v in card["versions"]] == [(1, 3), (2, 4)]
    assert datetime.fromisoformat(card["versions"][1]["effective_at"]) == later
    # Tier cards are ordinary cards, one rate for every destination.
    standard = await api.get(
        "/v1/admin/rate-cards/standard/versions/current.csv", headers=admin_headers
    )
    assert standard.text == "prefix,country,network,price\n,,,7900\n"
    assert_problem(
        await api.get("/v1/admin/rate-cards/nope", headers=admin_headers), 404, "not_found"
    )


async def test_a_dry_run_answers_the_diff_and_writes_nothing(api, admin_headers):
    assert (await import_card(api, admin_headers, "world", WORLD)).status_code == 201
    new = """prefix,country,network,price
1,US,,1200
44,GB,,25000
33,FR,,20000
"""
    response = await import_card(api, admin_headers, "world", new, dry_run=True)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "card": "world",
        "against": 1,
        "added": [{"prefix": "33", "old_price": None, "new_price": 20_000}],
        "removed": [{"prefix": "447", "old_price": 35_000, "new_price": None}],
        "price_up": [{"prefix": "1", "old_price": 1_000, "new_price": 1_200}],
        "price_down": [{"prefix": "44", "old_price": 30_000, "new_price": 25_000}],
        "unchanged": 0,
    }
    card = (await api.get("/v1/admin/rate-cards/world", headers=admin_headers)).json()
    assert len(card["versions"]) == 1
    # A dry run on a new card: everything is added, and no card is made.
    fresh = await import_card(api, admin_headers, "fresh", new, dry_run=True)
    assert fresh.status_code == 200
    assert (fresh.json()["against"], len(fresh.json()["added"])) == (None, 3)
    assert_problem(
        await api.get("/v1/admin/rate-cards/fresh", headers=admin_headers), 404, "not_found"
    )


async def test_a_malformed_file_is_refused_whole_with_every_problem_by_line(
    api, conn, admin_headers
):
    bad = """prefix,country,network,price
1,US,,1000
44a,GB,,30000
1,US,dup,1000
33,XX,,20000
34,ES,,-5
49,DE,,1.5
353,IE,,
7,RU
"""
    response = await import_card(api, admin_headers, "world", bad)
    problem = assert_problem(response, 422, "invalid_request")
    by_line = [(e["field"], e["detail"]) for e in problem["errors"]]
    assert [field for field, _ in by_line] == [
        "line 3",
        "line 4",
        "line 5",
        "line 6",
        "line 7",
        "line 8",
        "line 9",
    ]
    assert "digits" in by_line[0][1]
    assert "line 2" in by_line[1][1]  # the duplicate names the first
    assert "XX" in by_line[2][1]
    assert all("price" in detail for _, detail in by_line[3:6])
    assert "4" in by_line[6][1]  # fields, not 4
    for text, field in (
        ("", "line 1"),
        ("prefix,price\n1,1000\n", "line 1"),
        ("prefix,country,network,price\n", "line 2"),
    ):
        refused = assert_problem(
            await import_card(api, admin_headers, "world", text), 422, "invalid_request"
        )
        assert refused["errors"][0]["field"] == field
    assert (
        await support.count(conn, "SELECT count(*) AS n FROM rate_cards WHERE name = 'world'") == 0
    )
    not_csv = await api.post(
        "/v1/admin/rate-cards/world/versions",
        json={"prefix": "1"},
        headers=admin_headers,
    )
    assert_problem(not_csv, 422, "invalid_request")
    assert_problem(
        await import_card(api, admin_headers, "bad name!", WORLD), 422, "invalid_request"
    )


async def test_a_tenants_own_rates_need_a_tenant_and_a_good_file(api, admin_headers, tenant):
    headers = {**admin_headers, "Content-Type": "text/csv"}
    unknown = await api.put(
        "/v1/admin/tenants/00000000-0000-0000-0000-000000000000/rates",
        content=WORLD.encode(),
        headers=headers,
    )
    assert_problem(unknown, 404, "not_found")
    bad = await api.put(
        f"/v1/admin/tenants/{tenant.id}/rates",
        content=b"prefix,country,network,price\nx,,,1\n",
        headers=headers,
    )
    assert assert_problem(bad, 422, "invalid_request")["errors"][0]["field"] == "line 2"


async def test_a_large_import_leaves_the_planner_statistics_of_its_size(api, conn, admin_headers):
    async def rows_known():
        cursor = await conn.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'rate_card_spans'"
        )
        return (await cursor.fetchone())["reltuples"]

    small = "prefix,country,network,price\n1,US,,1000\n44,GB,,2000\n"
    assert (await import_card(api, admin_headers, "small", small)).status_code == 201
    assert await rows_known() < 100  # a handful of rates leaves them to autovacuum
    large = "prefix,country,network,price\n" + "".join(
        f"44{n:05d},GB,,{1000 + n}\n" for n in range(5_000)
    )
    assert (await import_card(api, admin_headers, "large", large)).status_code == 201
    # Accepts right after the import are planned knowing the card's thousands of spans.
    assert await rows_known() >= 5_000
