"""Forgetting a subject (§五.(三)): deleting its salt makes its entries unlinkable.

No entry, leaf or node changes, so every proof and checkpoint still verifies. A later
disclosure about the same subject gets a fresh salt, hence a pseudonym unrelated to the old.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from ledger.pseudonym import Pseudonymizer
from ledger.storage import salt_t, write_txn


def forget_subject(engine: Engine, pz: Pseudonymizer, subject_id: str) -> bool:
    """Delete the subject's salt.

    Returns:
        True if a salt was deleted, False if the subject had none.

    Raises:
        LedgerUnavailableError: storage failed.
    """
    key = pz.salt_key(subject_id)
    with write_txn(engine) as conn:
        res = conn.execute(salt_t.delete().where(salt_t.c.salt_key == key))
        return bool(res.rowcount)
