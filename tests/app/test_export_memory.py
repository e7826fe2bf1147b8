"""The export streams: a real `smsgw api` sends 200,000 messages of a window (~70 MB of
CSV, ~110 MB of JSON lines made by the API a chunk at a time) while the resident memory
of its granian worker, where the export runs, stays flat (slow: processes of its own)."""

from __future__ import annotations

import httpx
import pytest

from ops.load import children, memory
from smsgw import processes
from tests import support
from tests.conftest import ADMIN_TOKEN
from tests.workers import _env

ROWS = 200_000


def _worker_rss_kib(pid: int) -> int:
    """The resident memory of granian's worker(s), the children of the `smsgw api`
    process: the export runs there (the parent only supervises)."""
    workers = children(pid)
    assert workers, "no granian worker"
    return sum(memory(worker)["VmRSS"] for worker in workers)


async def _messages(conn, tenant_id: str) -> None:
    """ROWS delivered messages of today, free (price 0: held and captured at 0, so the
    ledger invariant holds), written directly: the export, not the accept, is measured."""
    await conn.execute(
        """
        WITH made AS (
            INSERT INTO messages (id, created_at, tenant_id, status, to_number, body,
                                  encoding, segments, price, expires_at, updated_at,
                                  provider, sent_at, delivered_at)
            SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
                    || substr(md5(i::text), 1, 3) || '8' || substr(md5(i::text), 4, 15))::uuid,
                   t, %(tenant)s, 'delivered', '+447400' || lpad(i::text, 6, '0'),
                   repeat('z', 200), 'GSM-7', 2, 0, t + interval '1 day', t, 'simulator',
                   t, t
              FROM generate_series(1, %(rows)s) AS i,
                   LATERAL (SELECT date_trunc('day', now()) + i * interval '1 ms' AS t) AS at
            RETURNING id, created_at, tenant_id
        )
        INSERT INTO ledger_message_entries (message_created_at, message_id, tenant_id, kind,
                                            amount)
        SELECT created_at, id, tenant_id, kind, 0
          FROM made, (VALUES ('hold'), ('capture')) AS k (kind)
        """,
        {"tenant": tenant_id, "rows": ROWS},
    )


@pytest.mark.parametrize("format_", ["csv", "jsonl"])
async def test_an_export_of_200k_messages_keeps_the_api_process_memory_flat(
    api, conn, db_url, admin_headers, tmp_path, format_
):
    tenant = await support.make_tenant(api, admin_headers, credit=1_000_000, name="big")
    await _messages(conn, tenant.id)
    env = _env(db_url, {})
    env["SMSGW_ADMIN_TOKEN"] = ADMIN_TOKEN
    port = processes.free_port()
    log = tmp_path / "api.log"
    proc = processes.spawn(processes.smsgw_command("api", "--port", str(port)), env=env, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_http(f"{base}/ready", watch=[proc], timeout=30)
        async with httpx.AsyncClient(base_url=base, headers=tenant.headers, timeout=120) as client:
            # A small export first: the code paths are loaded and warm.
            small = await client.get(
                "/v1/messages/export", params={"to": "2000-01-02", "format": format_}
            )
            assert small.status_code == 200, small.text
            start = _worker_rss_kib(proc.pid)
            peak, lines, size = start, 0, 0
            async with client.stream(
                "GET", "/v1/messages/export", params={"format": format_}
            ) as streamed:
                assert streamed.status_code == 200
                async for chunk in streamed.aiter_bytes():
                    size += len(chunk)
                    lines += chunk.count(b"\n")
                    peak = max(peak, _worker_rss_kib(proc.pid))
            end = _worker_rss_kib(proc.pid)
        assert lines == ROWS + (format_ == "csv")  # every message (and CSV's header)
        assert size > 60 * 1024 * 1024
        # Flat: the process grew by far less than the body it sent.
        print(f"export: {size / 1e6:.0f} MB, RSS start {start} KiB, peak {peak}, end {end}")
        assert peak - start < 40 * 1024, (start, peak, end)
    finally:
        processes.stop(proc, timeout=20)
