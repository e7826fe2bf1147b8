"""The country of a destination in SQL (README: smsgw_country_v1, offered to operators):
the longest dialing prefix that matches, NULL when none does."""

from __future__ import annotations

EXPECTED = {
    "+14155552671": "US",  # +1, the plan's main country
    "+14165550123": "CA",  # a Canadian area code in +1
    "+18765550123": "JM",
    "+447911123456": "GB",
    "+77012345678": "KZ",  # +77 inside Russia's +7
    "+79161234567": "RU",
    "+99912345678": None,  # no country has +999
}


async def test_the_country_of_a_number_is_its_longest_matching_prefix(conn):
    cursor = await conn.execute(
        "SELECT n AS number, smsgw_country_v1(n) AS country FROM unnest(%s::text[]) AS n",
        (list(EXPECTED),),
    )
    assert {row["number"]: row["country"] for row in await cursor.fetchall()} == EXPECTED
