"""Servicers under grpc_testing: every error in the tree maps to its gRPC status, once."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc_testing
import pytest

from gateway import errors
from gateway.interceptors import ErrorMappedServicer, new_request_id, status_for
from gateway.policy import NO_OBLIGATIONS, PolicyDecision, Reason
from gateway.registry import Registry
from gateway.security.identity import Principal, Role, bind_principal
from gateway.security.keys import PseudonymKeys
from gateway.services.admin import AdminServicer
from gateway.services.share import ShareServicer
from gateway.settings import REPO_ROOT, LimitsSettings
from gateway.sharing import Sharing
from ledger import Disclosure, Receipt, SignedCheckpoint
from ledger import errors as ledger_errors
from partner_gateway.v1 import admin_pb2, share_pb2

SHARE = share_pb2.DESCRIPTOR.services_by_name["ShareService"]
ADMIN = admin_pb2.DESCRIPTOR.services_by_name["AdminService"]
SERVICE = Principal(id="svc:checkout", role=Role.SERVICE)


class StaticEngine:
    """A policy engine fake: answers every question with one decision or one error."""

    revision = "test-rev"

    def __init__(self, *, allow: bool = True, error: Exception | None = None) -> None:
        self._allow = allow
        self._error = error

    def decide(self, input: Mapping[str, Any]) -> PolicyDecision:
        if self._error is not None:
            raise self._error
        return PolicyDecision(
            allow=self._allow,
            reasons=() if self._allow else (Reason("R2.unknown_recipient", "unknown recipient"),),
            excluded={},
            obligations=NO_OBLIGATIONS,
            subject_obligations={},
            revision=self.revision,
        )

    def reload(self) -> str:
        if self._error is not None:
            raise self._error
        return self.revision

    def close(self) -> None:
        pass


class ListLedger:
    """A ledger fake that keeps appends in a list, or fails every append with ``error``."""

    def __init__(self, error: Exception | None = None) -> None:
        self.appended: list[Disclosure] = []
        self._error = error

    def append(self, disclosures: Sequence[Disclosure]) -> list[Receipt]:
        if self._error is not None:
            raise self._error
        start = len(self.appended)
        self.appended.extend(disclosures)
        cp = SignedCheckpoint(origin="fake", size=len(self.appended), root=bytes(32), note="")
        return [
            Receipt(
                index=start + i, leaf_hash=bytes(32), payload_digest=d.payload_digest, checkpoint=cp
            )
            for i, d in enumerate(disclosures)
        ]

    async def append_async(self, disclosures: Sequence[Disclosure]) -> list[Receipt]:
        return self.append(disclosures)

    def forget_subject(self, subject_id: str) -> bool:
        return False


class AsCaller:
    """Binds a principal around each servicer call, as the auth interceptor does."""

    def __init__(self, servicer: object, principal: Principal | None) -> None:
        self._servicer = servicer
        self._principal = principal

    def __getattr__(self, name: str) -> Callable[..., Any]:
        behavior = getattr(self._servicer, name)
        if self._principal is None:
            return behavior
        if inspect.iscoroutinefunction(behavior):

            async def call_async(request: Any, context: Any) -> Any:
                with bind_principal(self._principal):
                    return await behavior(request, context)

            return call_async

        def call(request: Any, context: Any) -> Any:
            with bind_principal(self._principal):  # type: ignore[arg-type]
                return behavior(request, context)

        return call


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    reg = Registry.open(f"sqlite:///{tmp_path_factory.mktemp('reg') / 'r.db'}")
    reg.load_seed(REPO_ROOT / "gateway" / "demo" / "registry.toml")
    return reg


def share_server(
    registry: Registry,
    tmp_path: Path,
    *,
    engine: StaticEngine | None = None,
    ledger: ListLedger | None = None,
    principal: Principal | None = SERVICE,
    limits: LimitsSettings | None = None,
) -> grpc_testing.Server:
    sharing = Sharing(
        registry=registry,
        engine=engine or StaticEngine(),
        ledger=ledger or ListLedger(),  # type: ignore[arg-type]
        keys=PseudonymKeys(directory=tmp_path / "keys"),
    )
    servicer = ShareServicer(sharing=sharing, limits=limits or LimitsSettings())
    return grpc_testing.server_from_dictionary(
        {SHARE: ErrorMappedServicer(AsCaller(servicer, principal))},
        grpc_testing.strict_real_time(),
    )


def request(**changes: Any) -> share_pb2.ShareRequest:
    req = share_pb2.ShareRequest(
        recipient_id="adco",
        purpose="ad_delivery",
        action=share_pb2.ACTION_SHARE,
        legal_basis=share_pb2.LegalBasis(kind=share_pb2.LEGAL_BASIS_KIND_AUTHORIZED_PARTNER),
        record_type="customer_profile",
        records=[share_pb2.Record(subject_id="u1001", fields={"tags": "coffee"})],
    )
    for k, v in changes.items():
        setattr(req, k, v)
    return req


def call(server: grpc_testing.Server, req: Any, method: str = "Share") -> tuple[Any, Any, str]:
    """Invoke a unary method; returns (response, code, details).

    grpc_testing's ``abort`` drops trailing metadata, so the ErrorInfo reason is only visible
    over a real channel (tests/gateway/test_share_integration.py checks it there).
    """
    rpc = server.invoke_unary_unary(SHARE.methods_by_name[method], (), req, None)
    response, _trailing, code, details = rpc.termination()
    return response, code, details


def test_allowed_share_returns_records_and_a_receipt(registry: Registry, tmp_path: Path) -> None:
    """An allowed share answers OK with the records, the decision and the ledger receipt."""
    ledger = ListLedger()
    response, code, _ = call(share_server(registry, tmp_path, ledger=ledger), request())
    assert code == grpc.StatusCode.OK
    assert response.decision.allowed and response.decision.policy_revision == "test-rev"
    assert response.records[0].fields["tags"] == "coffee"
    assert response.receipt.ledger_index == 0 and len(ledger.appended) == 1


def test_policy_refusal_is_permission_denied_and_still_recorded(
    registry: Registry, tmp_path: Path
) -> None:
    """A refused share is PERMISSION_DENIED with the policy's reason, after a ledger append."""
    ledger = ListLedger()
    server = share_server(registry, tmp_path, engine=StaticEngine(allow=False), ledger=ledger)
    _, code, details = call(server, request())
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "R2.unknown_recipient" in details
    assert [d.decision for d in ledger.appended] == ["DENY"]


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"record_type": ""}, "record_type is required"),
        ({"record_type": "nope"}, "unknown record type"),
        ({"records": []}, "at least one record"),
    ],
)
def test_malformed_requests_are_invalid_argument(
    registry: Registry, tmp_path: Path, changes: dict[str, Any], phrase: str
) -> None:
    """Structural errors are INVALID_ARGUMENT with a stable reason, and nothing is recorded."""
    ledger = ListLedger()
    req = request()
    if "records" in changes:
        del req.records[:]
    else:
        req.record_type = changes["record_type"]
    _, code, details = call(share_server(registry, tmp_path, ledger=ledger), req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and phrase in details
    assert ledger.appended == []


def test_unknown_field_and_missing_subject_are_invalid_argument(
    registry: Registry, tmp_path: Path
) -> None:
    """A field outside the schema or a record without subject is INVALID_ARGUMENT."""
    server = share_server(registry, tmp_path)
    req = request()
    req.records[0].fields["shoe_size"] = "42"
    _, code, details = call(server, req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "shoe_size" in details
    req = request()
    req.records[0].subject_id = ""
    _, code, details = call(server, req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "no subject_id" in details


def test_limits_are_resource_exhausted_or_invalid_argument(
    registry: Registry, tmp_path: Path
) -> None:
    """Too many records is RESOURCE_EXHAUSTED; a too-long value is INVALID_ARGUMENT."""
    limits = LimitsSettings(max_records_per_request=1, max_field_value_bytes=8)
    server = share_server(registry, tmp_path, limits=limits)
    req = request()
    req.records.append(share_pb2.Record(subject_id="u1002", fields={"tags": "x"}))
    _, code, details = call(server, req)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_records_per_request=1" in details
    req = request()
    req.records[0].fields["tags"] = "a-much-too-long-value"
    _, code, details = call(server, req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "max_field_value_bytes=8" in details
    assert "a-much-too-long-value" not in details


def test_engine_failure_is_unavailable_and_discloses_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    """A policy engine error fails closed: UNAVAILABLE, no ledger entry, no records."""
    ledger = ListLedger()
    engine = StaticEngine(error=errors.PolicyEngineError("opa unreachable"))
    response, code, details = call(
        share_server(registry, tmp_path, engine=engine, ledger=ledger), request()
    )
    assert code == grpc.StatusCode.UNAVAILABLE and "opa unreachable" in details
    assert response is None and ledger.appended == []


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ledger_errors.LedgerUnavailableError("db down"), grpc.StatusCode.UNAVAILABLE),
        (ledger_errors.LedgerPushbackError("queue full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (ledger_errors.LedgerCorruptionError("bad root"), grpc.StatusCode.DATA_LOSS),
    ],
)
def test_ledger_failures_map_to_their_codes_and_disclose_nothing(
    registry: Registry, tmp_path: Path, error: Exception, code: grpc.StatusCode
) -> None:
    """A ledger failure answers its code and no record leaves (write-ahead audit)."""
    response, got, _ = call(share_server(registry, tmp_path, ledger=ListLedger(error)), request())
    assert got == code and response is None


def test_unexpected_exception_is_internal_not_unknown(registry: Registry, tmp_path: Path) -> None:
    """A bug surfaces as INTERNAL with a generic message, never UNKNOWN or the exception text."""
    engine = StaticEngine(error=RuntimeError("secret value Li Wei"))
    _, code, details = call(share_server(registry, tmp_path, engine=engine), request())
    assert code == grpc.StatusCode.INTERNAL
    assert "Li Wei" not in details


def test_call_without_principal_is_unauthenticated(registry: Registry, tmp_path: Path) -> None:
    """A servicer reached without an authenticated principal answers UNAUTHENTICATED."""
    _, code, _ = call(share_server(registry, tmp_path, principal=None), request())
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_evaluate_is_recorded_and_discloses_nothing(registry: Registry, tmp_path: Path) -> None:
    """Evaluate returns the decision after appending it with mode evaluate and no records."""
    ledger = ListLedger()
    response, code, _ = call(share_server(registry, tmp_path, ledger=ledger), request(), "Evaluate")
    assert code == grpc.StatusCode.OK and response.decision.allowed
    [entry] = ledger.appended
    assert (entry.mode, entry.record_count, entry.subject_ids) == ("evaluate", 0, ())


def admin_call(servicer: AdminServicer, method: str, req: Any) -> tuple[Any, grpc.StatusCode]:
    server = grpc_testing.server_from_dictionary(
        {ADMIN: ErrorMappedServicer(servicer)}, grpc_testing.strict_real_time()
    )
    response, _, code, _ = server.invoke_unary_unary(
        ADMIN.methods_by_name[method], (), req, None
    ).termination()
    return response, code


def test_admin_errors_map_to_not_found_invalid_argument_and_failed_precondition(
    registry: Registry,
) -> None:
    """Admin errors: unknown subject, bad partner kind and a bad policy get their codes."""
    admin = AdminServicer(
        registry=registry,
        engine=StaticEngine(error=errors.PolicyLoadError("rego_parse_error")),  # type: ignore[arg-type]
        ledger=ListLedger(),  # type: ignore[arg-type]
    )
    assert admin_call(admin, "GetSubject", admin_pb2.GetSubjectRequest(subject_id="nobody"))[1] == (
        grpc.StatusCode.NOT_FOUND
    )
    bad = admin_pb2.UpsertPartnerRequest(partner=admin_pb2.Partner(id="x"))
    assert admin_call(admin, "UpsertPartner", bad)[1] == grpc.StatusCode.INVALID_ARGUMENT
    assert admin_call(admin, "ReloadPolicy", admin_pb2.ReloadPolicyRequest())[1] == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    response, code = admin_call(
        admin, "GetSubject", admin_pb2.GetSubjectRequest(subject_id="u1002")
    )
    assert code == grpc.StatusCode.OK and response.ad_opt_out


@pytest.mark.parametrize(
    "error",
    [
        errors.ConfigError("x"),
        errors.InvalidRequestError("x"),
        errors.NotFoundError("x"),
        errors.UnauthenticatedError("x"),
        errors.PermissionDeniedError("x"),
        errors.PolicyDeniedError("x"),
        errors.ResourceExhaustedError("x"),
        errors.UnavailableError("x"),
        errors.PolicyEngineError("x"),
        errors.PolicyLoadError("x"),
    ],
)
def test_every_gateway_error_maps_to_its_declared_code(error: errors.GatewayError) -> None:
    """status_for gives each GatewayError its class's code and reason."""
    assert status_for(error) == (type(error).code, "x", type(error).reason)


def test_every_ledger_error_maps_to_its_declared_code() -> None:
    """status_for maps each LedgerError subclass by its grpc_code name."""
    classes = [
        c
        for c in vars(ledger_errors).values()
        if isinstance(c, type) and issubclass(c, ledger_errors.LedgerError)
    ]
    assert len(classes) > 5
    for cls in classes:
        code, _, reason = status_for(cls("x"))
        assert code == grpc.StatusCode[cls.grpc_code] and reason == cls.reason
        assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.OK)


def test_generated_request_ids_are_distinct_32_hex_digits() -> None:
    """A call without ``x-request-id`` gets a generated id: 32 hex digits, never repeated."""
    ids = {new_request_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
