"""The one interface every policy engine implements, and the factory that picks one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gateway.policy.decision import PolicyDecision

if TYPE_CHECKING:
    from gateway.settings import PolicySettings


@runtime_checkable
class PolicyEngine(Protocol):
    """Answers ``data.sharing.decision`` for contract-v1 inputs.

    Implementations are thread-safe: ``decide`` may run on many threads while ``reload``
    swaps the bundle; a decision in flight finishes on the bundle it started with.
    """

    @property
    def revision(self) -> str:
        """The revision of the bundle currently serving decisions."""
        ...

    def decide(self, input: Mapping[str, Any]) -> PolicyDecision:
        """Evaluate the decision for ``input`` (contract v1).

        Raises:
            PolicyEngineError: engine error, timeout, unreachable server, or an answer
                that does not follow the contract (fail closed -> UNAVAILABLE).
        """
        ...

    def reload(self) -> str:
        """Re-read the policy directory, compile it and swap it in atomically.

        Returns:
            The revision now serving.

        Raises:
            PolicyLoadError: the new bundle does not compile (message holds the compiler's
                error); the previous bundle keeps serving.
        """
        ...

    def close(self) -> None:
        """Release resources; further calls are undefined."""
        ...


def engine_from_settings(settings: PolicySettings) -> PolicyEngine:
    """Build the engine the settings ask for: an OPA server when ``opa_url`` is set, else
    the in-process ``engine`` (regorus, or OPA's Go evaluator).

    Raises:
        PolicyLoadError: the initial bundle does not load or compile.
        PolicyEngineError: the OPA server cannot be reached to load the bundle.
    """
    if settings.opa_url:
        from gateway.policy.opa_server import OpaServerEngine

        return OpaServerEngine(
            policy_dir=settings.dir,
            url=settings.opa_url,
            timeout_s=settings.opa_timeout_s,
            bundle_mode=settings.opa_bundle,
        )
    if settings.engine == "opa":
        from gateway.policy.opa_go import OpaGoEngine

        return OpaGoEngine(policy_dir=settings.dir)
    from gateway.policy.embedded import EmbeddedEngine

    return EmbeddedEngine(policy_dir=settings.dir)
