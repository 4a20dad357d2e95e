"""The auditor's questions over the ledger, and receipts that verify offline.

Protocol-free: the AuditService (gRPC) and the ``share-gateway audit`` CLI both use this.

Invariants:
- Read-only over the ledger, except that a receipt or checkpoint request may *sign* a new
  checkpoint when the latest one does not yet cover the log (signing adds no entry).
- Nothing here returns a clear subject id: a subject id is only an input, turned into its
  ledger pseudonym (``Ledger.subject_pseudonym``); a forgotten subject has no disclosures.
- ``verify_receipt`` is pure: it needs only the receipt document and the verifier key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger import Filter, Ledger, SignedCheckpoint, StoredEntry, VerificationError, open_checkpoint
from ledger.cosignature import CosignatureVerifier, split_note, verified_cosigners
from ledger.entry import decode_entry
from ledger.errors import LedgerCorruptionError
from ledger.log import MAX_QUERY_LIMIT
from ledger.merkle import leaf_hash
from ledger.verify import verify_inclusion

RECEIPT_FORMAT = "share-gateway/receipt/v1"
# Modes in which data actually left the gateway: an inline share, or a partner's pull.
# A staging decision ("stage") discloses nothing yet; its pull is recorded separately.
DISCLOSING_MODES = frozenset({"share", "pull"})
# The columns of one ledger entry as a table row or CSV line (`audit query`, the console).
ENTRY_COLUMNS = (
    "index",
    "time",
    "decision",
    "partner",
    "purpose",
    "action",
    "mode",
    "records",
    "categories",
    "reasons",
)


def query_page(
    ledger: Ledger, flt: Filter, *, after_index: int = -1, page_size: int = 100
) -> tuple[list[StoredEntry], int | None]:
    """One page of matching entries and the cursor of the next page (None: last page).

    Raises:
        InvalidArgumentError: page size outside 1..1000, naive datetimes, bad decision.
    """
    size = min(page_size, MAX_QUERY_LIMIT)
    # Ask for one more than the page to know whether another page exists.
    probe = min(size + 1, MAX_QUERY_LIMIT)
    entries = _query(ledger, flt, after_index=after_index, limit=probe)
    if len(entries) > size:
        entries = entries[:size]
        return entries, entries[-1].index
    if len(entries) == size == probe:  # page_size == the ledger's maximum: cannot probe
        return entries, entries[-1].index
    return entries, None


def iter_entries(
    ledger: Ledger, flt: Filter, *, after_index: int = -1, batch: int = 500
) -> Iterator[StoredEntry]:
    """Every matching entry after ``after_index``, ascending, fetched in batches."""
    cursor = after_index
    while True:
        entries = _query(ledger, flt, after_index=cursor, limit=batch)
        yield from entries
        if len(entries) < batch:
            return
        cursor = entries[-1].index


def _query(ledger: Ledger, flt: Filter, *, after_index: int, limit: int) -> list[StoredEntry]:
    return ledger.query(flt, after_index=after_index, limit=limit)


# -- "who got my data" (§五) ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SubjectDisclosure:
    """One disclosure of a subject's data: to whom, why, what, how, when."""

    index: int
    time: datetime
    partner_id: str
    purpose: str
    action: str
    mode: str
    categories: tuple[str, ...]


def subject_report(ledger: Ledger, subject_id: str) -> list[SubjectDisclosure]:
    """Every ALLOW entry in which ``subject_id``'s data left the gateway, oldest first.

    Entries where the subject was *left out* (excluded) or only staged do not count.
    """
    pseudonym = ledger.subject_pseudonym(subject_id)
    if pseudonym is None:
        return []  # never disclosed, or forgotten (salt deleted)
    out = []
    for stored in iter_entries(ledger, Filter(subject_id=subject_id, decision="ALLOW")):
        e = stored.entry
        if e.mode in DISCLOSING_MODES and pseudonym in e.subjects:
            out.append(
                SubjectDisclosure(
                    index=stored.index,
                    time=e.time,
                    partner_id=e.partner_id,
                    purpose=e.purpose,
                    action=e.action,
                    mode=e.mode,
                    categories=e.categories_disclosed,
                )
            )
    return out


def recipients(report: list[SubjectDisclosure]) -> list[str]:
    """Distinct recipients of a subject report, sorted: whom to notify (§五.(三)(四))."""
    return sorted({d.partner_id for d in report if d.partner_id})


# -- receipts -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ProvenEntry:
    """An entry, its inclusion proof, and the signed checkpoint the proof leads to."""

    entry: StoredEntry
    tree_size: int
    inclusion_proof: list[bytes]
    checkpoint: SignedCheckpoint


def covering_checkpoint(ledger: Ledger, min_size: int = 0) -> SignedCheckpoint:
    """The latest checkpoint published by the witnesses (k cosignatures in its note) if it
    covers ``min_size`` entries, else the latest signed checkpoint if it does, else a newly
    signed one.

    Raises:
        LedgerCorruptionError: no checkpoint covers ``min_size`` even after signing.
    """
    if ledger.witness_publisher is not None:
        published = ledger.cosigned_checkpoint(ledger.witness_publisher.quorum)
        if published is not None and published.size >= max(min_size, 1):
            return published
    cp = ledger.latest_checkpoint()
    if cp is None or cp.size < max(min_size, 1):
        cp = ledger.checkpoint()
    if cp.size < min_size:
        raise LedgerCorruptionError(f"no checkpoint covers {min_size} entries")
    return cp


def prove_entry(ledger: Ledger, index: int) -> ProvenEntry:
    """Entry ``index`` with its inclusion proof against a signed checkpoint that covers it.

    Raises:
        EntryNotFoundError: no such index.
    """
    stored = ledger.get_entry(index)
    cp = covering_checkpoint(ledger, index + 1)
    return ProvenEntry(
        entry=stored,
        tree_size=cp.size,
        inclusion_proof=ledger.inclusion_proof(index, cp.size),
        checkpoint=cp,
    )


def receipt_document(proven: ProvenEntry) -> dict[str, Any]:
    """The JSON receipt an auditor saves: everything ``verify_receipt`` needs but the key.

    ``entry`` is the exact canonical entry text (UTF-8); the leaf hash covers its bytes.
    """
    return {
        "format": RECEIPT_FORMAT,
        "index": proven.entry.index,
        "entry": proven.entry.data.decode("utf-8"),
        "leaf_hash": proven.entry.leaf_hash.hex(),
        "tree_size": proven.tree_size,
        "inclusion_proof": [h.hex() for h in proven.inclusion_proof],
        "checkpoint": proven.checkpoint.note,
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifiedReceipt:
    """What a receipt proves once verified."""

    index: int
    origin: str
    tree_size: int
    root: bytes
    entry: dict[str, Any]


def verify_receipt(
    doc: Mapping[str, Any],
    vkey: str,
    *,
    witness_vkeys: Sequence[str] = (),
    quorum: int = 0,
) -> VerifiedReceipt:
    """Verify a saved receipt offline with only the ledger's verifier key (and, to require
    that its checkpoint was published, the witnesses' keys).

    Steps: (1) the checkpoint's signature verifies with ``vkey`` (C2SP signed note) and its
    origin is the key's name; (1b) at least ``quorum`` of the witnesses ``witness_vkeys``
    cosigned it (c2sp.org/tlog-cosignature; a bad cosignature by one of them fails); (2) the
    leaf hash is recomputed from the entry bytes (RFC 9162 §2.1.1) and matches the stated one;
    (3) the entry states the same index; (4) the inclusion proof leads from that leaf to the
    checkpoint's root at the checkpoint's size (RFC 9162 §2.1.3.2).

    Raises:
        VerificationError: any step fails or the document is malformed.
    """
    try:
        if doc.get("format") != RECEIPT_FORMAT:
            raise VerificationError(f"not a {RECEIPT_FORMAT} document")
        index = int(doc["index"])
        data = str(doc["entry"]).encode("utf-8")
        stated_leaf = bytes.fromhex(str(doc["leaf_hash"]))
        tree_size = int(doc["tree_size"])
        proof = [bytes.fromhex(str(h)) for h in doc["inclusion_proof"]]
        note = str(doc["checkpoint"])
    except (KeyError, TypeError, ValueError) as e:
        raise VerificationError(f"malformed receipt: {type(e).__name__}: {e}") from e
    cp = open_checkpoint(note, vkey)  # (1)
    if quorum or witness_vkeys:  # (1b)
        try:
            witnesses = [CosignatureVerifier.parse(w) for w in witness_vkeys]
            body, lines = split_note(note)
            cosigners = verified_cosigners(body, lines, witnesses)
        except VerificationError as e:
            raise VerificationError(f"receipt checkpoint cosignatures: {e.message}") from e
        if len(cosigners) < quorum:
            raise VerificationError(
                f"receipt checkpoint has {len(cosigners)} of the {quorum} witness "
                "cosignature(s) required"
            )
    if cp.size != tree_size:
        raise VerificationError(f"receipt tree size {tree_size} is not the checkpoint's {cp.size}")
    leaf = leaf_hash(data)  # (2)
    if leaf != stated_leaf:
        raise VerificationError("leaf hash does not match the entry bytes")
    try:
        entry = decode_entry(data)  # canonical form, so one entry has one leaf hash
    except LedgerCorruptionError as e:
        raise VerificationError(f"entry is not a canonical ledger entry: {e}") from e
    if entry.index != index:  # (3)
        raise VerificationError(f"entry states index {entry.index}, receipt says {index}")
    verify_inclusion(index, cp.size, leaf, proof, cp.root)  # (4)
    return VerifiedReceipt(
        index=index, origin=cp.origin, tree_size=cp.size, root=cp.root, entry=json.loads(data)
    )
