"""The benchmark's 50,000-prefix card (ops/bench/rate_card.py): generated from the
shipped dialing prefixes, a valid price list, imported in one piece, and the bench's
destination priced by its deepest range."""

from __future__ import annotations

import asyncio

from core import rates
from ops.bench import rate_card
from tests import support, workers
from tests.app.rate_cards import import_card, put_on_card
from tests.conftest import ADMIN_TOKEN


def test_the_card_has_every_shipped_country_and_network_ranges():
    text = rate_card.generate(50_000)
    parsed = rates.parse_csv(text)  # raises on any problem
    assert len(parsed) == 50_000
    prefixes = {r.prefix for r in parsed}
    assert set(rate_card.shipped_prefixes()) <= prefixes
    assert rate_card.BENCH_RANGE in prefixes
    # A network range takes the country of the dialing prefix above it.
    uk = {r.country for r in parsed if r.prefix.startswith("44")}
    assert "GB" in uk
    assert uk <= {"GB", "GG", "IM", "JE"}
    # Another seed: the same prefixes at other prices (the dry run's diff).
    other = rates.parse_csv(rate_card.generate(50_000, seed=1))
    assert {r.prefix for r in other} == prefixes
    assert sum(a.price != b.price for a, b in zip(parsed, other, strict=True)) > 40_000


async def test_a_tenant_on_the_card_is_priced_by_the_deepest_range(
    api, conn, admin_headers, tenant
):
    text = rate_card.generate(50_000)
    imported = await import_card(api, admin_headers, "bench", text)
    assert imported.status_code == 201, imported.text
    assert imported.json()["rates"] == 50_000
    dry = await import_card(
        api, admin_headers, "bench", rate_card.generate(50_000, seed=1), dry_run=True
    )
    assert dry.status_code == 200
    assert len(dry.json()["price_up"]) + len(dry.json()["price_down"]) > 40_000
    await put_on_card(api, admin_headers, tenant, "bench")
    sent = await support.send(api, tenant, to="+14155552671")
    assert sent.status_code == 202, sent.text
    assert sent.json()["rate_prefix"] == rate_card.BENCH_RANGE
    assert await support.violations(conn) == []


async def test_install_puts_the_bench_tenants_on_the_card_of_a_real_api(
    api, admin_headers, db_url, tenant, tmp_path
):
    # A small card: this proves the harness's step, not its speed.
    with workers.api_process(db_url) as base:
        figures = await asyncio.to_thread(
            rate_card.install, base, db_url, ADMIN_TOKEN, [tenant.id], count=500, workdir=tmp_path
        )
    assert figures["card_rows"] == 500
    assert figures["card_import_seconds"] > 0
    assert figures["card_dry_run_seconds"] > 0
    shown = await api.get(f"/v1/admin/tenants/{tenant.id}", headers=admin_headers)
    assert shown.json()["rate_card"] == "bench"
