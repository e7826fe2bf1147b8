"""A card's prefixes laid out as spans (migration 0006) price every number as the
longest prefix would: the tenant's own rates first, then its card, nothing for a number
neither covers, and never a prefix longer than the number itself."""

from __future__ import annotations

import random
import uuid

from psycopg.types.json import Json


def _nested_card(rnd: random.Random, size: int) -> dict[str, int]:
    """Prefixes that nest several levels deep and crowd the edges of their parents
    ('0' and '9' children, runs of 9s whose end carries over)."""
    card: dict[str, int] = {}
    roots = ["1", "44", "9", "99", "33", "999"]
    while len(card) < size:
        parent = rnd.choice(roots + list(card))
        child = parent + rnd.choice("0123456789" if rnd.random() < 0.6 else "09")
        if len(child) <= 7:
            card[child] = rnd.randrange(1, 100_000)
    for root in roots[:3]:
        card[root] = rnd.randrange(1, 100_000)
    return card


async def _version(conn, name: str, rates: dict[str, int], tenant_id=None) -> None:
    card = await (
        await conn.execute(
            "INSERT INTO rate_cards (name, tenant_id) VALUES (%s, %s) RETURNING id",
            (name, tenant_id),
        )
    ).fetchone()
    version = await (
        await conn.execute(
            "INSERT INTO rate_card_versions (card_id, version, effective_at, rates, lengths)"
            " VALUES (%s, 1, now() - interval '1 minute', %s, '{}') RETURNING id",
            (card["id"], len(rates)),
        )
    ).fetchone()
    await conn.execute(
        "INSERT INTO rate_card_rates (version_id, prefix, price)"
        " SELECT %s, r.prefix, r.price FROM json_to_recordset(%s) AS r(prefix text, price bigint)",
        (version["id"], Json([{"prefix": p, "price": v} for p, v in rates.items()])),
    )
    if tenant_id is None:
        return card["id"]


def _longest(rates: dict[str, int], number: str) -> tuple[int, str] | None:
    digits = number.lstrip("+")
    for n in range(len(digits), -1, -1):
        if digits[:n] in rates:
            return rates[digits[:n]], digits[:n]
    return None


async def test_every_number_gets_the_longest_prefix_of_its_own_rates_then_of_its_card(conn):
    rnd = random.Random(23)
    card = _nested_card(rnd, 3_000)
    own = {p: 7 for p in rnd.sample(sorted(card), 40)} | {"4499": 5, "1": 3}
    tenant_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO tenants (id, name, tier, price_per_segment, webhook_secret)"
        " VALUES (%s, 'acme', 'standard', 7900, 'whsec_x')",
        (tenant_id,),
    )
    card_id = await _version(conn, "nested", card)
    await conn.execute("UPDATE tenants SET rate_card_id = %s WHERE id = %s", (card_id, tenant_id))
    await _version(conn, f"tenant:{tenant_id}", own, tenant_id=tenant_id)

    numbers = [
        "+" + (p + "".join(rnd.choices("0123456789", k=12)))[: rnd.randrange(8, 16)]
        for p in rnd.choices(sorted(card), k=3_000)
    ]
    numbers += [
        "+" + "".join(rnd.choices("0123456789", k=rnd.randrange(1, 16))) for _ in range(1_000)
    ]
    # Numbers shorter than the prefixes under them, and ones at a range's edge.
    numbers += ["+" + p[:-1] for p in card] + ["+" + p + "9" * 6 for p in card]

    rows = await (
        await conn.execute(
            "SELECT n.num, q.price_per_segment, q.rate_prefix, q.rate_card"
            "  FROM unnest(%s::text[]) AS n(num)"
            "  LEFT JOIN LATERAL smsgw_rate_v1(smsgw_rating_v1(%s, now()), n.num) AS q ON true",
            (numbers, tenant_id),
        )
    ).fetchall()
    wrong = []
    for row in rows:
        expected = _longest(own, row["num"])
        where = f"tenant:{tenant_id}"
        if expected is None:
            expected, where = _longest(card, row["num"]), "nested"
        got = (row["price_per_segment"], row["rate_prefix"]) if row["rate_card"] else None
        if got != expected or (got is not None and row["rate_card"] != where):
            wrong.append((row["num"], got, row["rate_card"], expected, where))
    assert wrong == [], wrong[:10]
    assert any(r["price_per_segment"] is None for r in rows)  # uncovered numbers exist


async def test_a_flat_card_covers_every_number_and_spans_follow_each_version(conn):
    # The tier cards of the schema are one rate for every destination: one span each.
    spans = await (
        await conn.execute(
            "SELECT c.name, s.lo, s.hi, s.prefix FROM rate_card_spans s"
            "  JOIN rate_card_versions v ON v.id = s.version_id"
            "  JOIN rate_cards c ON c.id = v.card_id ORDER BY c.name"
        )
    ).fetchall()
    assert [(s["name"], s["lo"], s["hi"], s["prefix"]) for s in spans] == [
        ("premium", "", ":", ""),
        ("standard", "", ":", ""),
        ("vip", "", ":", ""),
    ]
    card_id = await _version(conn, "two", {"44": 10, "447": 20, "4479": 30})
    lo_hi = await (
        await conn.execute(
            "SELECT s.lo, s.hi, s.prefix FROM rate_card_spans s JOIN rate_card_versions v"
            " ON v.id = s.version_id WHERE v.card_id = %s ORDER BY s.lo",
            (card_id,),
        )
    ).fetchall()
    # 44 around 447 around 4479, whose end carries over to 448.
    assert [(r["lo"], r["hi"], r["prefix"]) for r in lo_hi] == [
        ("44", "447", "44"),
        ("447", "4479", "447"),
        ("4479", "448", "4479"),
        ("448", "45", "44"),
    ]
