"""Health and reflection: what standard gRPC tools ask a server (issue 13.3).

- Health (``grpc.health.v1``): ``Check`` and ``Watch``; one servicer shared by the main and
  the probe listener, so both report NOT_SERVING from the first moment of shutdown.
- Reflection ``v1alpha`` (grpcio-reflection) and ``v1``. grpcio-reflection ships only
  v1alpha (grpc/grpc#38576); ``grpc/reflection/v1/reflection.proto`` is the same protocol
  under another package name (same messages, same field numbers), so the v1alpha servicer
  answers v1 calls too, and a v1 file descriptor derived from v1alpha's describes it.

Nothing here authenticates or records: on the main listener the ``AuthInterceptor`` sits in
front; the probe listener (``gateway.server``) serves only these services, without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

HEALTH = health.SERVICE_NAME
REFLECTION_V1ALPHA = reflection.SERVICE_NAME
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _add_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    """Add ``grpc/reflection/v1/reflection.proto`` to ``pool``: v1alpha's file, renamed."""
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    alpha = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(alpha)
    text = text_format.MessageToString(alpha).replace(
        "grpc.reflection.v1alpha", "grpc.reflection.v1"
    )
    v1 = text_format.Parse(text, descriptor_pb2.FileDescriptorProto())
    v1.name = _V1_FILE
    pool.Add(v1)


async def serving_health(services: Sequence[str]) -> health.aio.HealthServicer:
    """A health servicer reporting SERVING for the server (``""``) and each of ``services``."""
    servicer = health.aio.HealthServicer()
    for name in ["", *services]:
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return servicer


def add_tooling(
    server: grpc.aio.Server, health_servicer: health.aio.HealthServicer, services: Sequence[str]
) -> None:
    """Register health and reflection (v1alpha and v1, listing ``services`` and themselves)."""
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    _add_v1_descriptor(descriptor_pool.Default())
    servicer = reflection.aio.ReflectionServicer(
        [*services, HEALTH, REFLECTION_V1, REFLECTION_V1ALPHA]
    )
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1 = grpc.method_handlers_generic_handler(
        REFLECTION_V1,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))
