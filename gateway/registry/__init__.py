"""The registry: partners and their agreements, record schemas, and subject facts.

Stored as SQLModel tables in the same database as the audit ledger, loaded from a readable
seed file for the demo, and changed through the AdminService or the ``registry`` CLI.
"""

from gateway.registry.models import (
    ConsentGiver,
    ConsentScope,
    PartnerRecord,
    RecipientKind,
    SchemaRecord,
)
from gateway.registry.store import (
    Consent,
    Order,
    Recipient,
    Registry,
    SubjectFacts,
    Withdrawal,
)

__all__ = [
    "Consent",
    "ConsentGiver",
    "ConsentScope",
    "Order",
    "PartnerRecord",
    "Recipient",
    "RecipientKind",
    "Registry",
    "SchemaRecord",
    "SubjectFacts",
    "Withdrawal",
]
