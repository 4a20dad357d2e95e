"""Wiring: one gateway process = registry + policy engine + ledger + keys behind a gRPC server.

``create_server`` binds (port 0 in tests) and returns a ``BoundServer``; ``serve`` runs until
SIGINT/SIGTERM, then stops accepting calls, lets in-flight ones finish within the grace
period, cancels the rest, waits for pool steps in flight, and closes the ledger last so every
acknowledged decision is durable.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import structlog
from grpc_health.v1 import health
from opentelemetry.sdk.trace import TracerProvider

from gateway import metrics, schema
from gateway.database import open_engine
from gateway.datadir import check_sqlite_files, ensure_private_dir, prepare_data_dir
from gateway.errors import AddressInUseError, GatewayError, UnavailableError
from gateway.interceptors import CallInterceptor, current_request_id
from gateway.introspection import add_tooling, serving_health
from gateway.metrics import MetricsEndpoint
from gateway.outbox import Outbox, OutboxStore
from gateway.outbox.store import KEY_RING as OUTBOX_KEY_RING
from gateway.policy import PolicyEngine, PolicyWatcher, engine_from_settings
from gateway.policy.embedded import EmbeddedEngine
from gateway.registry import Registry
from gateway.security.authn import Authenticator
from gateway.security.devca import init_dev_pki
from gateway.security.identity import Principal
from gateway.security.interceptor import AuthInterceptor
from gateway.security.keys import KeyRing, PseudonymKeys
from gateway.security.limits import server_options
from gateway.security.refusals import RefusalCounter
from gateway.security.tls import probe_credentials, server_credentials
from gateway.security.tokens import TokenStore
from gateway.services.admin import AdminServicer
from gateway.services.audit import AuditServicer
from gateway.services.partner import PartnerServicer
from gateway.services.share import ShareServicer
from gateway.settings import Settings
from gateway.sharing import Sharing
from gateway.tracing import server_interceptor, tracer_provider_from_env
from gateway.workers import supervise
from ledger import Disclosure, Ledger
from ledger.witness.client import WitnessConfig
from partner_gateway.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    audit_pb2,
    audit_pb2_grpc,
    partner_pb2,
    partner_pb2_grpc,
    share_pb2,
    share_pb2_grpc,
)

_log = structlog.get_logger("gateway.server")


class Gateway:
    """The parts of one running gateway process, opened from settings and closed together."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: Registry,
        engine: PolicyEngine,
        ledger: Ledger,
        keys: PseudonymKeys,
        outbox_store: OutboxStore | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.engine = engine
        self.ledger = ledger
        self.keys = keys
        self.sharing = Sharing(registry=registry, engine=engine, ledger=ledger, keys=keys)
        self.refusals = RefusalCounter(append=ledger.append)
        self.refusals.start()
        # Partner outboxes (R17); None: DELIVERY_MODE_OUTBOX is refused, Pull has nothing.
        self.outbox = (
            Outbox(sharing=self.sharing, store=outbox_store) if outbox_store is not None else None
        )

    @classmethod
    def open(cls, settings: Settings) -> Gateway:
        """Open storage, load the demo seed into an empty registry, compile the policies.

        Raises:
            GatewayError / LedgerError: a part could not be opened (reported at start).
        """
        sqlite_db = prepare_data_dir(
            data_dir=settings.data_dir,
            keys_dir=settings.keys_dir,
            database_url=settings.ledger_url,
        )
        # Every table, at the newest schema revision (for an up-to-date database, a read).
        schema.upgrade(settings.ledger_url)
        database = open_engine(settings.ledger_url, pool_size=settings.worker_threads + 4)
        registry = Registry.open(
            database,
            tombstone_key=KeyRing(
                directory=settings.keys_dir / "registry", name="registry"
            ).current()[1],
        )
        if settings.seed_file is not None and registry.is_empty():
            registry.load_seed(settings.seed_file)
            _log.info("registry.seeded", seed=str(settings.seed_file))
        engine = engine_from_settings(settings.policy)
        ledger = Ledger.open(
            settings.ledger_url,
            keys_dir=settings.keys_dir,
            origin=settings.ledger.origin,
            max_batch=settings.ledger.max_batch,
            max_pending=settings.ledger.max_pending,
            witnesses=[WitnessConfig(url=w.url, vkey=w.vkey) for w in settings.ledger.witnesses],
            witness_quorum=settings.ledger.witness_quorum,
            witness_interval_s=settings.ledger.witness_interval_s,
            witness_check=settings.ledger.witness_check_at_start,
        )
        ledger.observe_commits(metrics.observe_commit)
        keys = PseudonymKeys(directory=settings.keys_dir / "pseudonym")
        outbox_store = OutboxStore.open(
            database,
            keys=KeyRing(directory=settings.keys_dir / OUTBOX_KEY_RING, name=OUTBOX_KEY_RING),
            retention=timedelta(hours=settings.outbox.retention_hours),
        )
        if sqlite_db is not None:  # -wal and -shm exist now: SQLite made them 0600 too
            check_sqlite_files(sqlite_db)
        return cls(
            settings=settings,
            registry=registry,
            engine=engine,
            ledger=ledger,
            keys=keys,
            outbox_store=outbox_store,
        )

    def record_refusal(
        self, principal: Principal | None, method: str, error: GatewayError, peer: str
    ) -> None:
        """Write a refused call to the ledger (issue 5): an unauthenticated one is counted
        per peer and window (``RefusalCounter``, issue 14.5), an identified caller's refusal
        is one entry of its own."""
        if principal is None:
            self.refusals.add(peer=peer, reason=error.reason)
            return
        self.ledger.append(
            [
                Disclosure(
                    time=datetime.now(UTC),
                    request_id=current_request_id(),
                    rpc=method,
                    caller=principal.id,
                    caller_role=str(principal.role),
                    partner_id=principal.partner_id or "",
                    mode="refused_call",
                    decision="DENY",
                    reason_codes=(error.reason,),
                )
            ]
        )

    def close(self) -> None:
        self.refusals.close()  # before the ledger: the last counts are written
        if self.outbox is not None:
            self.outbox.store.close()
        self.engine.close()
        self.ledger.close()
        self.registry.close()


@dataclass(kw_only=True)
class BoundServer:
    """A bound (not yet started) grpc.aio server and what its shutdown needs."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    pool: ThreadPoolExecutor
    #: The probe listener (health and reflection, no client certificate), if configured.
    probe: grpc.aio.Server | None = None
    probe_port: int | None = None
    #: Prometheus ``/metrics`` (``metrics_listen``), once started.
    metrics: MetricsEndpoint | None = None

    async def start(self, gateway: Gateway) -> None:
        """Serve; with ``metrics_listen`` set, also ``/metrics`` for ``gateway``.

        Raises:
            AddressInUseError: ``metrics_listen`` cannot be bound.
        """
        address = gateway.settings.metrics_listen
        if address is not None:
            try:
                self.metrics = MetricsEndpoint(gateway, address)
            except OSError as e:
                raise _address_in_use(address) from e
        await self.server.start()
        if self.probe is not None:
            await self.probe.start()

    async def stop(self, grace_s: float | None) -> None:
        """Report NOT_SERVING, refuse new calls, let calls in flight finish within
        ``grace_s`` and cancel the rest, then wait for pool steps already running (a started
        ledger append commits; no stream step is left half done when the ledger closes).
        The probe listener stops last, so probes see NOT_SERVING while the gateway drains."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        if self.probe is not None:
            await self.probe.stop(0)
        if self.metrics is not None:
            self.metrics.close()
        await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(self.pool.shutdown, wait=True, cancel_futures=True)
        )


async def create_server(
    gateway: Gateway,
    *,
    reuse_port: bool = False,
    tracer_provider: TracerProvider | None = None,
) -> BoundServer:
    """Build and bind (not start) the grpc.aio server for ``gateway`` on the running loop.

    ``Share``, ``Evaluate`` and every streaming RPC run on the event loop (waiting for the
    ledger's group commit or for the caller costs no thread); blocking steps of streams and
    every other RPC run in a pool of ``worker_threads`` threads (ADR 0005, 0007).

    With ``probe_listen`` set, a second listener serves health and reflection only, without
    a client certificate and without recording anything (``docs/operations.md``). With
    ``reuse_port`` (a worker of ``serve --workers N``) the listeners share their ports with
    the other workers; otherwise a busy port is an error. With ``tracer_provider`` every
    RPC but health gets an OpenTelemetry span (``gateway.tracing``).

    Raises:
        AddressInUseError: ``listen`` or ``probe_listen`` cannot be bound.
        ConfigError: the TLS settings do not fit a listener.
    """
    settings = gateway.settings
    tokens = TokenStore.from_file(settings.tokens_file) if settings.tokens_file else None
    authenticator = Authenticator(
        trust_domain=settings.tls.trust_domain,
        verify_token=tokens.verify if tokens else None,
        partner_exists=lambda pid: gateway.registry.partner(pid) is not None,
    )
    pool = ThreadPoolExecutor(max_workers=settings.worker_threads, thread_name_prefix="rpc")
    # A busy port is an error, never a second server silently sharing it (unless workers).
    reuse = ("grpc.so_reuseport", 1 if reuse_port else 0)
    tracing = [] if tracer_provider is None else [server_interceptor(tracer_provider)]
    server = grpc.aio.server(
        migration_thread_pool=pool,
        interceptors=[
            CallInterceptor(),
            *tracing,
            AuthInterceptor(
                authenticator=authenticator, on_refused=gateway.record_refusal, executor=pool
            ),
        ],
        options=[*server_options(settings.limits), reuse],
        maximum_concurrent_rpcs=settings.limits.max_concurrent_rpcs,
    )
    # Registry reads on SQLite and the embedded engine take microseconds: on the loop.
    # PostgreSQL reads and an OPA server are network round trips: in the pool.
    on_loop = gateway.registry.is_sqlite and isinstance(gateway.engine, EmbeddedEngine)
    share_pb2_grpc.add_ShareServiceServicer_to_server(
        ShareServicer(
            sharing=gateway.sharing,
            limits=settings.limits,
            outbox=gateway.outbox,
            blocking=None if on_loop else pool,
            bulk=pool,
        ),
        server,
    )
    if gateway.outbox is not None:
        partner_pb2_grpc.add_PartnerServiceServicer_to_server(
            PartnerServicer(outbox=gateway.outbox, executor=pool), server
        )
    audit_pb2_grpc.add_AuditServiceServicer_to_server(
        AuditServicer(ledger=gateway.ledger, executor=pool), server
    )
    admin_pb2_grpc.add_AdminServiceServicer_to_server(
        AdminServicer(registry=gateway.registry, engine=gateway.engine, ledger=gateway.ledger),
        server,
    )
    services = [
        share_pb2.DESCRIPTOR.services_by_name["ShareService"].full_name,
        admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
        audit_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    ]
    if gateway.outbox is not None:
        services.append(partner_pb2.DESCRIPTOR.services_by_name["PartnerService"].full_name)
    health_servicer = await serving_health(services)
    add_tooling(server, health_servicer, services)
    port = _bind(server, settings.listen, server_credentials(settings))
    probe, probe_port = None, None
    if settings.probe_listen is not None:
        probe = grpc.aio.server(interceptors=[CallInterceptor()], options=[reuse])
        add_tooling(probe, health_servicer, services)
        probe_port = _bind(probe, settings.probe_listen, probe_credentials(settings))
    return BoundServer(
        server=server,
        port=port,
        health=health_servicer,
        pool=pool,
        probe=probe,
        probe_port=probe_port,
    )


def _bind(server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    """Bind ``address``; returns the port (the chosen one for port 0).

    Raises:
        AddressInUseError: the address is taken (or not local): the one-line start error.
    """
    try:
        if credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, credentials)
    except RuntimeError as e:  # grpc: "Failed to bind to address ..."
        raise _address_in_use(address) from e


def _address_in_use(address: str) -> AddressInUseError:
    return AddressInUseError(
        f"cannot listen on {address}: the address is in use by another process "
        "or not available on this host",
    )


def with_dev_pki(settings: Settings) -> Settings:
    """Serve with the development CA under ``data_dir/pki`` (created on first use), mTLS on.

    Used when no certificate is configured and plaintext is not asked for, so the embedded
    default is never plaintext and a newcomer can talk to it with the demo client certs.
    """
    ensure_private_dir(settings.data_dir)
    pki = settings.data_dir / "pki"
    if not (pki / "server.crt").exists():
        init_dev_pki(pki)
    tls = settings.tls.model_copy(
        update={
            "cert_file": pki / "server.crt",
            "key_file": pki / "server.key",
            "client_ca_file": pki / "ca.crt",
            "require_client_cert": True,
        }
    )
    return settings.model_copy(update={"tls": tls})


def tune_gc() -> None:
    """Collector settings for a long-running server, after start-up (measured in
    docs/benchmarks.md: a 10,000-record share spent a third of its time in collections of
    young objects). Everything loaded so far leaves the collector's generations for good,
    and young objects are collected every 50,000 net allocations instead of 700."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def serve(settings: Settings) -> None:
    """Run a gateway until SIGINT/SIGTERM, then drain and shut down gracefully; with
    ``workers`` > 1, supervise that many (``gateway.workers``).

    Raises:
        ConfigError: invalid settings (e.g. several workers on SQLite, a busy address).
        UnavailableError: a worker ended with an error.
    """
    os.umask(0o077)  # every file this process creates is the owner's only (issue 14.6)
    if settings.workers > 1:
        if supervise(settings) != 0:
            raise UnavailableError("a worker ended with an error; see its log", reason="workers")
        return
    asyncio.run(_serve(settings))


async def _serve(settings: Settings, *, reuse_port: bool = False) -> None:
    tracer_provider = tracer_provider_from_env(os.environ)
    gateway = Gateway.open(settings)
    try:
        bound = await create_server(gateway, reuse_port=reuse_port, tracer_provider=tracer_provider)
    except GatewayError:
        gateway.close()
        raise
    tune_gc()
    watcher = None
    if settings.policy.watch_interval_s > 0:
        watcher = PolicyWatcher(
            engine=gateway.engine,
            policy_dir=settings.policy.dir,
            interval_s=settings.policy.watch_interval_s,
        )
        watcher.start()
    await bound.start(gateway)
    host = settings.listen.rpartition(":")[0]
    _log.info(
        "gateway.serving",
        address=f"{host}:{bound.port}",
        tls=server_credentials(settings) is not None,
        policy_revision=gateway.engine.revision,
        ledger_size=gateway.ledger.size,
        verifier_key=gateway.ledger.verifier_key,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, signum, stopping)
    await stopping.wait()
    await bound.stop(settings.grace_period_s)
    if watcher is not None:
        watcher.stop()
    gateway.close()
    if tracer_provider is not None:
        tracer_provider.shutdown()  # exports the spans still queued
    _log.info("gateway.stopped")


def _on_signal(signum: int, stopping: asyncio.Event) -> None:
    _log.info("gateway.stopping", signal=signal.Signals(signum).name)
    stopping.set()
