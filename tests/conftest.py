"""Test fixtures: one real PostgreSQL server per test session (in memory when there is
room), a template database built from db/schema.sql plus procrastinate's schema, and a
fresh clone of it per test that needs one, made ahead while the tests before run. After
every test that used a database, the ledger invariant must hold. Tests that take seconds
by design are marked `slow` (SLOW below)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import psycopg
import pytest
from litestar import Litestar
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pytest_postgresql.janitor import DatabaseJanitor

from app.factory import create_app
from core.settings import Settings
from db import Conn
from db.pool import open_pool
from smsgw.embedded import SUPERUSER, TEST_SETTINGS, EmbeddedPostgres
from tests import support

TEMPLATE = "smsgw_template"
ADMIN_TOKEN = "test-admin-token"

# Tests that take seconds by design, marked `slow` here in one place (a folder, a file
# or a test): `ops/test -m "not slow"` is the quick run while working, .ci/run and a
# plain `ops/test` run everything.
SLOW = (
    # The operator's tools run as an operator runs them: `smsgw run` (its embedded
    # PostgreSQL), `smsgw doctor`, a streaming replica, backup and restore, the load
    # scripts, the wheel built and installed, the logs of real processes.
    "ops/",
    # Servers of their own, restarted one fault at a time.
    "faults/",
    # Real `smsgw api` / `smsgw worker` processes driven from outside: schemathesis and
    # hostile input, headless Chromium, the twilio package, kill and signal.
    "hostile/",
    "app/test_dashboard_browser.py",
    "app/test_consoles_browser.py",
    # A real `smsgw api` streams 200,000 rows while its memory is watched.
    "app/test_export_memory.py",
    # PostgreSQL, PgBouncer, an API and two workers as real processes.
    "db/test_pgbouncer.py",
    "app/test_twilio_client.py",
    "jobs/test_recovery.py::test_sigkill_",
    "jobs/test_recovery.py::test_sigterm_",
    "isolation/test_keys_and_secrets.py::test_no_secret_reaches_the_logs_of_a_real_api_",
    # Volume, and behaviour over real time (paces, backoff, timeouts, an outage).
    "jobs/test_failover.py",
    "jobs/test_provider_pacing.py",
    "jobs/test_smpp_delivery.py",
    "smpp_server/test_receipts.py::test_five_thousand_",
    "providers/test_smpp.py::test_two_thousand_messages_",
    "jobs/test_delivery.py::test_a_thousand_messages_",
    "jobs/test_callbacks.py::test_many_callbacks_in_parallel_lanes_",
    "jobs/test_delivery.py::test_a_scheduled_message_waits_",
    "jobs/test_tiers_and_fairness.py::test_a_tenants_delivery_pace_holds",
    "jobs/test_tiers_and_fairness.py::test_a_small_tenant_is_served_while_",
    "jobs/test_turn_pace.py::test_a_small_turn_spaces_",
    "jobs/test_callbacks.py::test_a_failing_endpoint_",
    "jobs/test_callbacks.py::test_a_hanging_endpoint_",
    "providers/test_http.py::test_a_hanging_or_absent_",
    "smpp_server/test_receipts.py::test_a_receipt_the_esme_refuses_for_now_comes_again",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).parent
    for item in items:
        if not item.path.is_relative_to(tests):
            continue
        node = item.path.relative_to(tests).as_posix() + "::" + item.name
        if node.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    password: str
    embedded: EmbeddedPostgres

    def url(self, dbname: str) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@{self.host}:{self.port}/{dbname}"

    def janitor(self, dbname: str, template: str | None = None) -> DatabaseJanitor:
        return DatabaseJanitor(
            user=SUPERUSER,
            host=self.host,
            port=self.port,
            dbname=dbname,
            template_dbname=template,
            password=self.password,
        )


# Where the session's PostgreSQL keeps its data (mkdtemp makes a private folder there).
# Not pytest's tmp dir: when we are root the server runs as `postgres`, which must be
# able to reach it.
MEMORY, DISK = "/dev/shm", "/tmp"  # noqa: S108


def _data_parent() -> str:
    """Memory when there is room: the data is thrown away after the session (and the
    server runs with fsync off anyway). On a small machine's disk, cloning the template
    for each test took half the time of the quick run."""
    if os.path.isdir(MEMORY) and shutil.disk_usage(MEMORY).free >= 2 * 1024**3:
        return MEMORY
    return DISK


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    base = Path(tempfile.mkdtemp(prefix="smsgw-tests-", dir=_data_parent()))
    base.chmod(0o755)
    embedded = EmbeddedPostgres(base / "pg", settings=dict(TEST_SETTINGS))
    embedded.start()
    assert embedded.port is not None
    server = Server(
        "127.0.0.1", embedded.port, embedded.password_file.read_text().strip(), embedded
    )
    try:
        yield server
    finally:
        embedded.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server: Server) -> str:
    janitor = pg_server.janitor(TEMPLATE)
    janitor.init()
    with psycopg.connect(pg_server.url(TEMPLATE), autocommit=True) as conn:
        support.load_schema(conn)
    return TEMPLATE


class Clones:
    """Fresh databases cloned from the template, made ahead in threads while tests run:
    cloning the template (some 800 relations) takes 0.3 to 0.7 s on a small machine,
    more than most tests take themselves."""

    AHEAD = 2

    def __init__(self, server: Server, template: str) -> None:
        self.server, self.template = server, template
        self.threads = ThreadPoolExecutor(max_workers=self.AHEAD, thread_name_prefix="clones")
        self.ready: collections.deque[Future[str]] = collections.deque()

    def make(self) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.server.janitor(name, template=self.template).init()
        return name

    def take(self) -> str:
        while len(self.ready) <= self.AHEAD:
            self.ready.append(self.threads.submit(self.make))
        return self.ready.popleft().result()

    def close(self) -> None:
        for made in self.ready:
            with contextlib.suppress(Exception):
                self.server.janitor(made.result()).drop()
        self.threads.shutdown()


@pytest.fixture(scope="session")
def clones(pg_server: Server, template_db: str) -> Iterator[Clones]:
    clones = Clones(pg_server, template_db)
    try:
        yield clones
    finally:
        clones.close()


@pytest.fixture
def db_url(pg_server: Server, clones: Clones) -> Iterator[str]:
    """A fresh database cloned from the template; the ledger invariant is checked after."""
    name = clones.take()
    janitor = pg_server.janitor(name)
    url = pg_server.url(name)
    try:
        yield url
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            problems = conn.execute(
                "SELECT tenant_id, message_id, problem FROM smsgw_ledger_violations_v1()"
            ).fetchall()
        assert problems == [], f"ledger invariant broken: {problems}"
    finally:
        janitor.drop()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings.from_env(
        {
            "DATABASE_URL": db_url,
            "SMSGW_ADMIN_TOKEN": ADMIN_TOKEN,
            "SMSGW_LOG_JSON": "true",
            # Tests knock with bad keys on purpose; tests/app/test_auth_throttle.py
            # checks the throttle with a low limit of its own.
            "SMSGW_AUTH_FAILURES_LIMIT": "1000",
            # The suite's webhook receivers listen on 127.0.0.1; the rest of loopback
            # stays forbidden (tests/jobs/test_webhook_destinations.py uses 127.0.0.2).
            "SMSGW_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
        }
    )


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[AsyncConnectionPool[Conn]]:
    pool = await open_pool(settings.database_url, min_size=1, max_size=40)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def conn(pool: AsyncConnectionPool[Conn]) -> AsyncIterator[Conn]:
    async with pool.connection() as conn:
        yield conn


@pytest.fixture
async def api(
    settings: Settings, pool: AsyncConnectionPool[Conn]
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client bound to the app in this process and this event loop (ASGI, lifespan
    run). Not Litestar's AsyncTestClient: that one runs the app on a portal thread's loop
    and blocks the caller's loop per request, so requests never overlap (asyncio.gather
    runs them one by one) and the pool, bound to this loop, cannot open connections."""
    async with app_client(settings, pool) as client:
        yield client


@pytest.fixture
async def api_one_call_each(
    settings: Settings, pool: AsyncConnectionPool[Conn]
) -> AsyncIterator[httpx.AsyncClient]:
    """Like ``api``, with ``SMSGW_ACCEPT_CALLS=0``: each single send in an accept call of
    its own, as before coalescing."""
    async with app_client(msgspec.structs.replace(settings, accept_calls=0), pool) as client:
        yield client


@asynccontextmanager
async def app_client(
    settings: Settings, pool: AsyncConnectionPool[Conn]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, pool=pool)
    transport = httpx.ASGITransport(app=app)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://smsgw.test") as client,
    ):
        yield client


@asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Runs the app's lifespan in a task of its own: pytest-asyncio may tear a fixture down
    in another task than it set it up in, and the lifespan's task group must not notice."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        try:
            async with app.lifespan():
                started.set()
                await stop.wait()
        finally:
            started.set()

    task = asyncio.create_task(run())
    await started.wait()
    if task.done():
        task.result()  # startup failed: raise its error here
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def tenant(api: httpx.AsyncClient, admin_headers: dict[str, str]) -> support.TenantHandle:
    """A standard-tier tenant with 10 units of credit."""
    return await support.make_tenant(api, admin_headers, credit=10_000_000)


os.environ.setdefault("SMSGW_TESTING", "1")
