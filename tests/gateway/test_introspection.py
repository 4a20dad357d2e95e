"""Standard gRPC tooling: reflection v1 and v1alpha, health, the probe listener (issue 13.3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from gateway.testing import RunningGateway, running_gateway

SERVICES = {
    "partner_gateway.v1.ShareService",
    "partner_gateway.v1.AdminService",
    "partner_gateway.v1.AuditService",
    "partner_gateway.v1.PartnerService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    data = tmp_path_factory.mktemp("tooling")
    with running_gateway(data, probe_listen="127.0.0.1:0") as running:
        yield running


class _V1Stub:
    """The reflection client's stub, pointed at the v1 service (same messages on the wire)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.ServerReflectionInfo = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )


def _reflection_db(channel: grpc.Channel, version: str) -> ProtoReflectionDescriptorDatabase:
    db = ProtoReflectionDescriptorDatabase(channel)
    if version == "v1":
        db._stub = _V1Stub(channel)  # grpcio-reflection's client speaks v1alpha only
    return db


def _describes_the_api(db: ProtoReflectionDescriptorDatabase) -> None:
    assert set(db.get_services()) == SERVICES
    pool = descriptor_pool.DescriptorPool(db)
    share = pool.FindServiceByName("partner_gateway.v1.ShareService")
    assert {m.name for m in share.methods} >= {"Share", "Evaluate", "ShareStream"}
    partner = pool.FindServiceByName("partner_gateway.v1.PartnerService")
    assert partner.methods_by_name["Pull"].server_streaming
    v1 = pool.FindServiceByName("grpc.reflection.v1.ServerReflection")
    assert v1.methods_by_name["ServerReflectionInfo"].input_type.full_name == (
        "grpc.reflection.v1.ServerReflectionRequest"
    )


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_describes_the_api_on_the_main_port(gw: RunningGateway, version: str) -> None:
    """grpcio-reflection's client lists every service and resolves methods; no ledger entry."""
    before = gw.gateway.ledger.size
    with gw.channel("auditor", "audit-team") as ch:
        _describes_the_api(_reflection_db(ch, version))
    assert gw.gateway.ledger.size == before


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_probe_listener_serves_reflection_and_health_without_a_certificate(
    gw: RunningGateway, version: str
) -> None:
    """Plaintext on loopback, no client certificate: health SERVING, reflection works."""
    before = gw.gateway.ledger.size
    with grpc.insecure_channel(f"127.0.0.1:{gw.bound.probe_port}") as ch:
        check = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        _describes_the_api(_reflection_db(ch, version))
    assert gw.gateway.ledger.size == before


def test_probe_listener_serves_nothing_else(gw: RunningGateway) -> None:
    """Every data RPC on the probe port is UNIMPLEMENTED and nothing is recorded."""
    before = gw.gateway.ledger.size
    with grpc.insecure_channel(f"127.0.0.1:{gw.bound.probe_port}") as ch:
        for method in (
            "/partner_gateway.v1.ShareService/Share",
            "/partner_gateway.v1.AuditService/QueryDisclosures",
            "/partner_gateway.v1.AdminService/ReloadPolicy",
        ):
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(method)(b"", timeout=5)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert gw.gateway.ledger.size == before


def test_unknown_method_is_unimplemented_and_not_recorded(gw: RunningGateway) -> None:
    """An unknown method on the main port is UNIMPLEMENTED, with no DENY entry."""
    before = gw.gateway.ledger.size
    with gw.channel("service", "checkout") as ch:
        for method in (
            "/partner_gateway.v1.ShareService/DropEverything",
            "/grpc.reflection.v2.ServerReflection/ServerReflectionInfo",
        ):
            with pytest.raises(grpc.RpcError) as info:
                ch.unary_unary(method)(b"", timeout=5)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert gw.gateway.ledger.size == before


def test_non_loopback_probe_without_a_certificate_is_refused_at_start(tmp_path: Path) -> None:
    """A probe listener off loopback needs server TLS; without a certificate start fails."""
    from gateway.errors import ConfigError
    from gateway.security.tls import probe_credentials
    from gateway.settings import Settings

    settings = Settings.load(
        env={}, overrides={"data_dir": str(tmp_path), "probe_listen": "0.0.0.0:8081"}
    )
    with pytest.raises(ConfigError, match="probe_listen"):
        probe_credentials(settings)
