"""The SMPP listener: accepts ESME connections, admits binds, and runs the outbox pusher
and the upkeep of what the binds share.

One process serves many binds on one event loop (``smsgw smpp``; ``smsgw run`` starts
one when SMSGW_SMPP_PORT is set); several processes can serve one database, behind a
TCP load balancer: everything they must agree on is in PostgreSQL. A bind takes one of
its tenant's ``max_binds`` slots, a session-level advisory lock held on this process's
slots connection, so the limit holds across processes and a crashed listener's slots
free themselves with its connection. Receipts for a tenant go out through whichever
process holds one of its receiver binds (smpp_server/outbox.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import Iterable, Sequence

import structlog
from psycopg_pool import AsyncConnectionPool

from core import coalesce, smpp_accounts
from core.accept import DispatchScheduler
from core.auth_throttle import FailedAuthThrottle
from core.errors import RateLimited
from core.settings import Settings
from core.smpp_accounts import Binding, BindRefused
from core.tenants import Tenant
from db import Conn, migrate
from db import smpp as smpp_db
from db.pool import open_pool
from smpp_server import pdu, status
from smpp_server.bind_slots import BindSlots
from smpp_server.intake import Intake
from smpp_server.outbox import OutboxPusher
from smpp_server.session import Session

log = structlog.get_logger("smsgw.smpp_server")

REFRESH_SECONDS = 5.0
CLEANUP_EVERY = 6  # refreshes: about every 30 s
# Receipt requests of messages still not final after this are dropped (a carrier that
# sends no receipt leaves messages `sent`); as core/receipts.py's horizon.
RECEIPT_HORIZON_SECONDS = 4 * 24 * 3600.0


class Listener:
    def __init__(
        self,
        settings: Settings,
        pool: AsyncConnectionPool[Conn],
        *,
        scheduler: DispatchScheduler,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._settings = settings
        self._refresh_seconds = refresh_seconds
        self._pool = pool
        self.intake = Intake(
            pool, scheduler, coalesce.for_settings(pool, settings, task=scheduler.task)
        )
        # Bind slots are session advisory locks: on the database itself, never through a
        # transaction-mode pooler.
        self._slots = BindSlots(settings.direct_url)
        self._throttle = FailedAuthThrottle(
            limit=settings.auth_failures_limit,
            window_seconds=settings.auth_failures_window_seconds,
        )
        self._sessions: dict[uuid.UUID, set[Session]] = {}
        self._bindings: dict[uuid.UUID, Binding] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._pusher = OutboxPusher(pool, self)
        self._background: list[asyncio.Task[None]] = []
        # Unbinds the upkeep started (revoked credentials, lost slots), kept referenced.
        self._unbinds: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._closing = False
        self.port = 0

    # -- life --------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host``:``port`` (0: any free port); returns the port."""
        self._server = await asyncio.start_server(self._connected, host, port, backlog=1024)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._background = [
            asyncio.create_task(self._pusher.run(), name="smpp-server-outbox"),
            asyncio.create_task(self._upkeep(), name="smpp-server-upkeep"),
        ]
        log.info("smpp.listening", host=host, port=self.port)
        return self.port

    async def close(self) -> None:
        """Stop listening, unbind every ESME (their submits in flight are answered
        first), give back unsent outbox rows and slots."""
        if self._server is not None:
            self._server.close()
        sessions = [s for group in self._sessions.values() for s in group]
        await asyncio.gather(*(s.unbind() for s in sessions), return_exceptions=True)
        await asyncio.gather(*self._connections, return_exceptions=True)
        self._closing = True
        await _cancel_until_done(self._background)
        await self._slots.close()
        if self._server is not None:
            await self._server.wait_closed()
        log.info("smpp.stopped")

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(
            self,
            reader,
            writer,
            window=self._settings.smpp_window,
            deliver_window=self._settings.smpp_deliver_window,
            enquire_link_seconds=self._settings.smpp_enquire_link_seconds,
        )
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await session.run()
        finally:
            self._connections.discard(task)

    # -- binds -------------------------------------------------------------------------

    async def admit(self, session: Session, request: pdu.BindRequest) -> int:
        """The bind_resp status for ``request``; on ESME_ROK the session holds a slot."""
        fields = {"system_id": request.system_id, "peer": session.peer, "bind": request.kind}
        try:
            self._throttle.check(session.peer)
            async with self._pool.connection() as conn:
                binding = await smpp_accounts.authenticate(
                    conn, system_id=request.system_id, password=request.password, peer=session.peer
                )
            slot = await self._slots.take(binding.account.tenant_id, binding.account.max_binds)
        except RateLimited:
            log.warning("smpp.bind_refused", reason="too_many_failures", **fields)
            return status.ESME_RBINDFAIL
        except BindRefused as exc:
            log.warning("smpp.bind_refused", reason=exc.reason, **fields)
            if exc.reason == "credentials":
                with contextlib.suppress(Exception):
                    await self._throttle.failed(self._pool, session.peer)
                return status.ESME_RINVPASWD
            return status.ESME_RBINDFAIL
        except Exception as exc:
            log.warning("smpp.bind_failed", error=type(exc).__name__, **fields)
            return status.ESME_RSYSERR
        tenant_id = binding.account.tenant_id
        if slot is None:
            log.warning(
                "smpp.bind_refused",
                reason="bind_limit",
                tenant_id=str(tenant_id),
                max_binds=binding.account.max_binds,
                **fields,
            )
            return status.ESME_RBINDFAIL
        session.binding, session.slot = binding, slot
        self._sessions.setdefault(tenant_id, set()).add(session)
        self._bindings[tenant_id] = binding
        log.info("smpp.bound", tenant_id=str(tenant_id), slot=slot, **fields)
        if request.can_receive:
            self._pusher.wake()
        return status.ESME_ROK

    async def release(self, session: Session) -> None:
        tenant_id = session.tenant_id
        if tenant_id is None or session.slot is None:
            return
        group = self._sessions.get(tenant_id, set())
        group.discard(session)
        if not group:
            self._sessions.pop(tenant_id, None)
            self._bindings.pop(tenant_id, None)
        await self._slots.release(tenant_id, session.slot)
        session.slot = None

    def tenant(self, tenant_id: uuid.UUID) -> Tenant | None:
        """The tenant as last read (refreshed every few seconds while it has binds)."""
        binding = self._bindings.get(tenant_id)
        return None if binding is None else binding.tenant

    def receiving_tenants(self) -> Sequence[uuid.UUID]:
        return [
            tenant_id
            for tenant_id, group in self._sessions.items()
            if any(s.can_receive for s in group)
        ]

    def receivers(self, tenant_id: uuid.UUID) -> list[Session]:
        return [s for s in self._sessions.get(tenant_id, ()) if s.can_receive]

    # -- upkeep ------------------------------------------------------------------------

    async def _upkeep(self) -> None:
        rounds = 0
        while not self._closing:
            await asyncio.sleep(self._refresh_seconds)
            rounds += 1
            try:
                await self._refresh()
                if not await self._slots.healthy():
                    await self._retake_slots()
                if rounds % CLEANUP_EVERY == 0:
                    await self._cleanup()
            except Exception as exc:
                log.warning("smpp.upkeep_failed", error=type(exc).__name__)

    async def _refresh(self) -> None:
        """Re-read the bound tenants: a price, tier or rate change reaches their binds
        within seconds; a deleted account or a new password closes binds made before."""
        if not self._sessions:
            return
        async with self._pool.connection() as conn:
            current = await smpp_accounts.current_bindings(conn, tenant_ids=list(self._sessions))
        for tenant_id, binding in current.items():
            group = list(self._sessions.get(tenant_id, ()))
            if binding is not None and group:
                self._bindings[tenant_id] = binding
            for session in group:
                bound = session.binding
                if binding is None:
                    log.info("smpp.bind_ended", tenant_id=str(tenant_id))  # gone or suspended
                    self._unbind(session)
                elif (
                    bound is not None
                    and binding.account.password_changed_at > bound.account.password_changed_at
                ):
                    log.info("smpp.credentials_changed", tenant_id=str(tenant_id))
                    self._unbind(session)

    def _unbind(self, session: Session) -> None:
        task = asyncio.create_task(session.unbind(), name="smpp-server-unbind")
        self._unbinds.add(task)
        task.add_done_callback(self._unbinds.discard)

    async def _retake_slots(self) -> None:
        """The slots connection was lost, and with it every slot: take them again; a
        bind that finds its tenant full (another listener filled it) is closed."""
        log.warning("smpp.slots_connection_lost")
        for tenant_id, group in list(self._sessions.items()):
            binding = self._bindings.get(tenant_id)
            for session in list(group):
                limit = binding.account.max_binds if binding else 1
                slot = await self._slots.take(tenant_id, limit)
                if slot is None:
                    session.slot = None
                    self._unbind(session)
                else:
                    session.slot = slot

    async def _cleanup(self) -> None:
        async with self._pool.connection() as conn:
            expired = await smpp_db.expire_parts(
                conn, seconds=self._settings.smpp_reassembly_seconds
            )
            await smpp_db.purge_outbox(
                conn, seconds=self._settings.smpp_outbox_retention_hours * 3600
            )
            await smpp_db.purge_receipt_requests(conn, seconds=RECEIPT_HORIZON_SECONDS)
        if expired:
            log.info("smpp.parts_expired", messages=expired)


async def _cancel_until_done(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them to end, cancelling again any still running a
    second later. A cancel can be lost (seen once in the suite: the upkeep loop went on
    after close() cancelled it, a race inside a wait of the driver or of Python 3.11's
    asyncio), and a loop that lost it would hold the shutdown for good."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)


async def _require_schema(pool: AsyncConnectionPool[Conn]) -> None:
    """Refuse to start on a schema older than this code, or of the pre-release history:
    there, the accept call of a submit may not be the one this code expects (one that
    drops the receipt request without a word, say)."""
    async with pool.connection() as conn:
        try:
            version = await migrate.current_version(conn)
        except migrate.PreReleaseDatabase as exc:
            raise SchemaBehind(str(exc)) from None
    expected = migrate.latest_version()
    if version is None or version < expected:
        raise SchemaBehind(f"schema at {version}, code expects {expected}: run `smsgw migrate`")


class SchemaBehind(RuntimeError):
    pass


async def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    scheduler: DispatchScheduler,
    install_signal_handlers: bool = True,
) -> None:
    """Run a listener until SIGINT or SIGTERM."""
    pool = await open_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        name="smsgw-smpp",
        prepared_statements=settings.db_prepared_statements,
    )
    try:
        await _require_schema(pool)
    except BaseException:
        await pool.close()
        raise
    listener = Listener(settings, pool, scheduler=scheduler)
    stop = asyncio.Event()
    if install_signal_handlers:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    try:
        await listener.start(host, port)
        await stop.wait()
    finally:
        await listener.close()
        await pool.close()
