"""``share-gateway audit ...``: the auditor's command line.

Design (see docs/auditing.md): ``query``, ``report``, ``recipients``, ``export`` and
``receipt`` read the ledger database directly (``--db`` / ``--config`` / ``--keys-dir``, as
``share-gateway ledger verify``), so they run on the gateway host with the gateway's key
directory: looking a subject id up needs the ledger's subject key, and ``receipt`` may sign
a checkpoint covering the entry. ``verify-receipt`` is fully offline: it reads only the
receipt file and the verifier key string given on the command line.

Exit codes: 0 done / verified; 1 verification failed; 2 the ledger or file is unusable.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gateway.auditing import (
    Filter,
    iter_entries,
    prove_entry,
    receipt_document,
    subject_report,
    verify_receipt,
)
from gateway.auditing import (
    recipients as report_recipients,
)
from ledger import Ledger, LedgerError, StoredEntry, VerificationError
from ledger.cli import existing_database

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Audit: query disclosures, subject reports, receipts and offline verification.",
)

DbOpt = Annotated[
    str | None, typer.Option("--db", help="Ledger database URL (default: the gateway's settings).")
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Gateway settings TOML file.", exists=True)
]
KeysOpt = Annotated[
    Path | None, typer.Option("--keys-dir", help="Key directory (default: the gateway's).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SubjectOpt = Annotated[str, typer.Option("--subject", help="Clear subject id to look up.")]


class Decision(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"


class Action(StrEnum):
    SHARE = "SHARE"
    TRANSFER = "TRANSFER"
    PUBLIC_DISCLOSURE = "PUBLIC_DISCLOSURE"


COLUMNS = (
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


@contextmanager
def open_ledger(db: str | None, config: Path | None, keys_dir: Path | None) -> Iterator[Ledger]:
    """Open the gateway's ledger read-side (never creates keys: the signing key must exist)."""
    from gateway.cli.connection import load_settings
    from ledger.keys import load_signer

    settings = load_settings(config) if db is None or keys_dir is None else None
    url = existing_database(db if db is not None else settings.ledger_url)  # type: ignore[union-attr]
    kd = keys_dir if keys_dir is not None else settings.keys_dir  # type: ignore[union-attr]
    signer = load_signer(kd)
    with Ledger.open(url, keys_dir=kd, origin=signer.name) as ledger:
        yield ledger


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"not an ISO 8601 date/time: {value!r}")
        raise
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def entry_json(stored: StoredEntry) -> dict[str, Any]:
    """The entry as its canonical JSON object plus its leaf hash (for --json and export)."""
    return {
        "index": stored.index,
        "leaf_hash": stored.leaf_hash.hex(),
        "entry": json.loads(stored.data),
    }


def _row(stored: StoredEntry) -> list[str]:
    e = stored.entry
    return [
        str(stored.index),
        e.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        e.decision,
        e.partner_id,
        e.purpose,
        e.action,
        e.mode,
        str(e.record_count),
        " ".join(e.categories_disclosed),
        " ".join(e.reason_codes),
    ]


def _table(title: str, columns: tuple[str, ...], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*r)
    Console(width=200).print(table)


@app.command()
def query(
    subject: Annotated[str | None, typer.Option("--subject", help="Clear subject id.")] = None,
    partner: Annotated[str | None, typer.Option("--partner")] = None,
    purpose: Annotated[str | None, typer.Option("--purpose")] = None,
    action: Annotated[Action | None, typer.Option("--action", case_sensitive=False)] = None,
    decision: Annotated[Decision | None, typer.Option("--decision", case_sensitive=False)] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time, inclusive.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time, exclusive.")] = None,
    page_token: Annotated[
        str | None,
        typer.Option("--page-token", "--after", help="Continue after this cursor (an index)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many entries.", min=1)] = 100,
    show_all: Annotated[bool, typer.Option("--all", help="Every matching entry.")] = False,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    keys_dir: KeysOpt = None,
) -> None:
    """List disclosure decisions matching every filter, oldest first.

    Prints at most --limit entries (default 100) and then a "more results" line naming the
    --page-token to continue from; --all prints every one.
    """
    flt = Filter(
        subject_id=subject,
        partner_id=partner,
        purpose=purpose,
        action=action.value if action else None,
        decision=decision.value if decision else None,
        since=_time(since),
        until=_time(until),
    )
    after = _cursor(page_token)
    more = False
    try:
        with open_ledger(db, config, keys_dir) as ledger:
            found: list[StoredEntry] = []
            for stored in iter_entries(ledger, flt, after_index=after):
                if not show_all and len(found) >= limit:
                    more = True
                    break
                found.append(stored)
    except LedgerError as e:
        _fail(e.diagnostics())
        return
    if as_json:
        typer.echo(json.dumps([entry_json(s) for s in found], indent=2, ensure_ascii=False))
    elif as_csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        w.writerows(_row(s) for s in found)
        typer.echo(buf.getvalue(), nl=False)
    else:
        _table(f"{len(found)} ledger entries", COLUMNS, [_row(s) for s in found])
    if more:
        typer.echo(
            f"more results: use --all or --page-token {found[-1].index}",
            err=as_json or as_csv,  # keep machine-readable output parseable
        )


def _cursor(page_token: str | None) -> int:
    if page_token is None:
        return -1
    if not page_token.isdigit():
        raise typer.BadParameter("must be a ledger index", param_hint="--page-token")
    return int(page_token)


@app.command()
def report(
    subject: SubjectOpt,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    keys_dir: KeysOpt = None,
) -> None:
    """Who received this subject's data: partner, purpose, categories, action, when (§五)."""
    try:
        with open_ledger(db, config, keys_dir) as ledger:
            found = subject_report(ledger, subject)
    except LedgerError as e:
        _fail(e.diagnostics())
        return
    rows = [
        {
            "index": d.index,
            "time": d.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "partner": d.partner_id,
            "purpose": d.purpose,
            "action": d.action,
            "mode": d.mode,
            "categories": list(d.categories),
        }
        for d in found
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    cols = ("index", "time", "partner", "purpose", "action", "mode", "categories")
    _table(
        f"{len(rows)} disclosures of the subject's data",
        cols,
        [[str(r[c]) if c != "categories" else " ".join(r[c]) for c in cols] for r in rows],  # type: ignore[arg-type]
    )


@app.command()
def recipients(
    subject: SubjectOpt,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    keys_dir: KeysOpt = None,
) -> None:
    """Partners that received this subject's data: whom to tell of a withdrawal or deletion."""
    try:
        with open_ledger(db, config, keys_dir) as ledger:
            names = report_recipients(subject_report(ledger, subject))
    except LedgerError as e:
        _fail(e.diagnostics())
        return
    if as_json:
        typer.echo(json.dumps(names))
    else:
        for name in names:
            typer.echo(name)


@app.command()
def export(
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: stdout).")
    ] = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    keys_dir: KeysOpt = None,
) -> None:
    """Every ledger entry as JSON Lines: index, leaf hash and the canonical entry."""
    try:
        with open_ledger(db, config, keys_dir) as ledger:
            lines = (
                json.dumps(entry_json(s), ensure_ascii=False, separators=(",", ":"))
                for s in iter_entries(ledger, Filter())
            )
            if out is None:
                for line in lines:
                    typer.echo(line)
            else:
                with out.open("w", encoding="utf-8") as f:
                    for line in lines:
                        f.write(line + "\n")
    except LedgerError as e:
        _fail(e.diagnostics())


@app.command()
def receipt(
    index: Annotated[int, typer.Argument(help="Ledger index of the entry.")],
    out: Annotated[Path, typer.Option("--out", help="Receipt file to write (JSON).")],
    db: DbOpt = None,
    config: ConfigOpt = None,
    keys_dir: KeysOpt = None,
) -> None:
    """Save a receipt: entry, leaf hash, inclusion proof and the signed checkpoint."""
    try:
        with open_ledger(db, config, keys_dir) as ledger:
            doc = receipt_document(prove_entry(ledger, index))
    except LedgerError as e:
        _fail(e.diagnostics())
        return
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    typer.echo(f"receipt for entry {index} (tree size {doc['tree_size']}) written to {out}")


@app.command("verify-receipt")
def verify_receipt_cmd(
    file: Annotated[Path, typer.Argument(help="Receipt file (share-gateway audit receipt).")],
    key: Annotated[str, typer.Option("--key", help="Verifier key name+keyid+base64.")],
) -> None:
    """Check a saved receipt OFFLINE: checkpoint signature, leaf hash, inclusion proof."""
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        _fail(f"cannot read receipt {file}: {e}")
        return
    try:
        verified = verify_receipt(doc, key)
    except VerificationError as e:
        typer.echo(f"FAILED: {e}")
        raise typer.Exit(1) from None
    entry = verified.entry
    typer.echo(
        f"OK: entry {verified.index} ({entry.get('decision')} {entry.get('mode')} to "
        f"{entry.get('partner_id') or '-'}, {entry.get('time')}) is in {verified.origin} "
        f"at tree size {verified.tree_size}; checkpoint signature valid"
    )
