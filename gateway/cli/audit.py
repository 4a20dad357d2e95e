"""``share-gateway audit ...``: the auditor's command line.

Two modes (see docs/auditing.md):

* **Remote** (``--server HOST:PORT``): the commands call ``AuditService`` over TLS as an
  auditor (client certificate, by default the dev PKI's ``auditor-audit-team``, or a bearer
  token) and believe nothing before verifying it (``gateway.audit_client``): each call first
  verifies the latest signed checkpoint with the verifier key the auditor holds (``--vkey`` /
  ``GATEWAY_VKEY``) and proves it extends the last one verified, saved under ``--state-dir``;
  receipts, entries and exports are checked against it. ``checkpoint`` and ``consistency``
  are always remote.
* **Local** (default; ``--db`` / ``--config`` / ``--keys-dir``, as ``share-gateway ledger
  verify``): for operators on the gateway host. ``query``, ``report``, ``recipients``,
  ``export`` and ``receipt`` read the ledger database directly; a subject lookup needs the
  ledger's subject key and ``receipt`` may sign a checkpoint covering the entry.

``verify-receipt`` is fully offline: only the receipt file and the verifier key.

Exit codes: 0 done / verified; 1 verification failed (rollback, fork, bad signature or
proof); 2 the ledger, the gateway or a file is unusable.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table

from gateway.audit_client import (
    AuditClient,
    CheckpointStore,
    RootCheck,
    default_state_dir,
    open_note,
)
from gateway.auditing import (
    ENTRY_COLUMNS,
    iter_entries,
    prove_entry,
    receipt_document,
    subject_report,
    verify_receipt,
)
from gateway.auditing import (
    recipients as recipients_of,
)
from gateway.cli.connection import (
    CaOpt,
    CertOpt,
    KeyOpt,
    PlaintextOpt,
    TokenOpt,
    command_target,
    connect_address,
    fail,
    load_settings,
    reporting,
)
from ledger import Filter, Ledger, LedgerError, StoredEntry, VerificationError
from ledger.cli import existing_database
from ledger.entry import decode_entry
from partner_gateway.v1 import audit_pb2

AUDITOR_IDENTITY = "auditor-audit-team"
VKEY_ENV = "GATEWAY_VKEY"

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Audit: query disclosures, subject reports, receipts and offline verification.",
)

DbOpt = Annotated[
    str | None, typer.Option("--db", help="Local mode: ledger database URL (default: settings).")
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Gateway settings TOML file.", exists=True),
]
KeysOpt = Annotated[
    Path | None, typer.Option("--keys-dir", help="Local mode: key directory (default: settings).")
]
RemoteOpt = Annotated[
    str | None,
    typer.Option("--server", help="Remote mode: call AuditService at HOST:PORT."),
]
VkeyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--vkey",
        envvar=VKEY_ENV,
        help="Ledger verifier key you were given (repeat for rotated keys; default: the "
        "settings' key directory, if on the gateway host).",
    ),
]
StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir", help="Where the last verified checkpoints are kept (default: XDG state)."
    ),
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


COLUMNS = ENTRY_COLUMNS
REPORT_COLUMNS = ("index", "time", "partner", "purpose", "action", "mode", "categories")


# -- the two modes --------------------------------------------------------------------------


@contextmanager
def open_ledger(db: str | None, config: Path | None, keys_dir: Path | None) -> Iterator[Ledger]:
    """Local mode: open the gateway's ledger (never creates a database or keys)."""
    from ledger.keys import load_signer

    try:
        settings = load_settings(config) if db is None or keys_dir is None else None
        url = existing_database(db if db is not None else settings.ledger_url)  # type: ignore[union-attr]
        kd = keys_dir if keys_dir is not None else settings.keys_dir  # type: ignore[union-attr]
        signer = load_signer(kd)
        with Ledger.open(url, keys_dir=kd, origin=signer.name) as ledger:
            yield ledger
    except LedgerError as e:
        fail(e.diagnostics())


@contextmanager
def remote(ctx: typer.Context, server: str) -> Iterator[AuditClient]:
    """Remote mode: a verified client, its checkpoint already synced; the connection options
    are the command's own (``ctx.params``).

    A failed check exits 1 (``FAILED: ...``); a failed call or unusable option exits 2.
    """
    p = ctx.params
    target = command_target(ctx, identity=AUDITOR_IDENTITY, server=server)
    client = AuditClient(
        channel=target.channel(),
        server=server,
        vkeys=p["vkey"] or _host_vkeys(p["config"]),
        store=CheckpointStore(directory=p["state_dir"] or default_state_dir()),
        metadata=target.metadata,
    )
    try:
        with reporting(target):
            client.sync()
            yield client
    except VerificationError as e:
        _failed(e)
    except LedgerError as e:  # a malformed answer (entry bytes that do not decode)
        fail(e.diagnostics())


def _host_vkeys(config: Path | None) -> list[str]:
    """The verifier keys of the settings' key directory: only on the gateway host."""
    from ledger.keys import SIGNING_KEY_FILE, load_signer, retired_vkeys

    kd = load_settings(config).keys_dir
    if not (kd / SIGNING_KEY_FILE).is_file():
        fail(
            f"remote mode needs the ledger's verifier key: --vkey KEY or {VKEY_ENV} (the "
            "gateway's operator prints it with `share-gateway ledger verifier-key`)"
        )
    try:
        return [load_signer(kd).vkey, *retired_vkeys(kd)]
    except LedgerError as e:
        fail(e.diagnostics())


def _failed(e: VerificationError) -> NoReturn:
    typer.echo(f"FAILED: {e.message}", err=True)
    raise typer.Exit(1)


# -- rendering ------------------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 date/time: {value!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_json(stored: StoredEntry) -> dict[str, Any]:
    """The entry as its canonical JSON object plus its leaf hash (for --json and export)."""
    return {
        "index": stored.index,
        "leaf_hash": stored.leaf_hash.hex(),
        "entry": json.loads(stored.data),
    }


def stored_entry(message: audit_pb2.LedgerEntry) -> StoredEntry:
    """A remote entry as the local ``StoredEntry`` (decoded from its canonical bytes)."""
    return StoredEntry(
        index=message.index,
        leaf_hash=message.leaf_hash,
        data=message.data,
        entry=decode_entry(message.data),
    )


def _row(stored: StoredEntry) -> list[str]:
    e = stored.entry
    return [
        str(stored.index),
        _utc(e.time),
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


# -- commands -------------------------------------------------------------------------------


@app.command()
def query(
    ctx: typer.Context,
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
    server: RemoteOpt = None,
    plaintext: PlaintextOpt = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    token: TokenOpt = None,
    vkey: VkeyOpt = None,
    state_dir: StateOpt = None,
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
    if page_token is not None and not page_token.isdigit():
        raise typer.BadParameter("must be a ledger index", param_hint="--page-token")
    want = None if show_all else limit
    found: list[StoredEntry] = []
    more: str | None = None
    if server is None:
        with open_ledger(db, config, keys_dir) as ledger:
            after = int(page_token) if page_token is not None else -1
            for stored in iter_entries(ledger, flt, after_index=after):
                if want is not None and len(found) >= want:
                    more = str(found[-1].index)
                    break
                found.append(stored)
    else:
        with remote(ctx, server) as client:
            next_token = page_token or ""
            while want is None or len(found) < want:
                size = 1000 if want is None else min(want - len(found), 1000)
                page, next_token = client.query(
                    _filter_message(flt), page_token=next_token, page_size=size
                )
                found.extend(stored_entry(e) for e in page)
                if not next_token:
                    break
            more = next_token or None
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
            f"more results: use --all or --page-token {more}",
            err=as_json or as_csv,  # keep machine-readable output parseable
        )


def _filter_message(flt: Filter) -> audit_pb2.DisclosureFilter:
    def ts(t: datetime | None) -> Timestamp | None:
        if t is None:
            return None
        out = Timestamp()
        out.FromDatetime(t)
        return out

    return audit_pb2.DisclosureFilter(
        subject_id=flt.subject_id or "",
        partner_id=flt.partner_id or "",
        purpose=flt.purpose or "",
        action=flt.action or "",
        decision=flt.decision or "",
        since=ts(flt.since),
        until=ts(flt.until),
    )


def _report_rows(ctx: typer.Context, subject: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The subject's disclosures (as plain rows) and the distinct recipients, either mode."""
    p = ctx.params
    if p["server"] is None:
        with open_ledger(p["db"], p["config"], p["keys_dir"]) as ledger:
            found = subject_report(ledger, subject)
        rows = [
            {
                "index": d.index,
                "time": _utc(d.time),
                "partner": d.partner_id,
                "purpose": d.purpose,
                "action": d.action,
                "mode": d.mode,
                "categories": list(d.categories),
            }
            for d in found
        ]
        return rows, recipients_of(found)
    with remote(ctx, p["server"]) as client:
        answer = client.subject_report(subject)
    rows = [
        {
            "index": d.ledger_index,
            "time": _utc(d.time.ToDatetime(tzinfo=UTC)),
            "partner": d.partner_id,
            "purpose": d.purpose,
            "action": d.action,
            "mode": d.mode,
            "categories": list(d.categories),
        }
        for d in answer.disclosures
    ]
    return rows, list(answer.recipients)


@app.command()
def report(
    ctx: typer.Context,
    subject: SubjectOpt,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    keys_dir: KeysOpt = None,
    server: RemoteOpt = None,
    plaintext: PlaintextOpt = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    token: TokenOpt = None,
    vkey: VkeyOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Who received this subject's data: partner, purpose, categories, action, when (§五)."""
    rows, _ = _report_rows(ctx, subject)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    _table(
        f"{len(rows)} disclosures of the subject's data",
        REPORT_COLUMNS,
        [
            [" ".join(r[c]) if c == "categories" else str(r[c]) for c in REPORT_COLUMNS]
            for r in rows
        ],
    )


@app.command()
def recipients(
    ctx: typer.Context,
    subject: SubjectOpt,
    as_json: JsonOpt = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    keys_dir: KeysOpt = None,
    server: RemoteOpt = None,
    plaintext: PlaintextOpt = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    token: TokenOpt = None,
    vkey: VkeyOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Partners that received this subject's data: whom to tell of a withdrawal or deletion."""
    _, names = _report_rows(ctx, subject)
    if as_json:
        typer.echo(json.dumps(names))
    else:
        for name in names:
            typer.echo(name)


@app.command()
def export(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: stdout).")
    ] = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    keys_dir: KeysOpt = None,
    server: RemoteOpt = None,
    plaintext: PlaintextOpt = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    token: TokenOpt = None,
    vkey: VkeyOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Every ledger entry as JSON Lines: index, leaf hash and the canonical entry.

    Remote: the leaves are folded into the Merkle root, which must equal the verified
    checkpoint's; with --out the file is written only if it does.
    """
    sink = _Sink(out)
    if server is None:
        with open_ledger(db, config, keys_dir) as ledger:
            for stored in iter_entries(ledger, Filter()):
                sink.write(stored)
    else:
        with remote(ctx, server) as client:
            check = RootCheck(client.trusted)
            for message in client.stream(audit_pb2.DisclosureFilter()):
                check.add(message)
                sink.write(stored_entry(message))
            check.finish()
    sink.commit()


class _Sink:
    """JSON Lines to stdout, or to a file that appears only when complete."""

    def __init__(self, out: Path | None) -> None:
        self._out = out
        self._tmp = out.with_name(f".{out.name}.partial") if out is not None else None
        self._file = self._tmp.open("w", encoding="utf-8") if self._tmp is not None else None

    def write(self, stored: StoredEntry) -> None:
        line = json.dumps(entry_json(stored), ensure_ascii=False, separators=(",", ":"))
        if self._file is None:
            typer.echo(line)
        else:
            self._file.write(line + "\n")

    def commit(self) -> None:
        if self._file is not None and self._tmp is not None and self._out is not None:
            self._file.close()
            os.replace(self._tmp, self._out)


@app.command()
def receipt(
    ctx: typer.Context,
    index: Annotated[int, typer.Argument(help="Ledger index of the entry.", min=0)],
    out: Annotated[Path, typer.Option("--out", help="Receipt file to write (JSON).")],
    db: DbOpt = None,
    config: ConfigOpt = None,
    keys_dir: KeysOpt = None,
    server: RemoteOpt = None,
    plaintext: PlaintextOpt = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    token: TokenOpt = None,
    vkey: VkeyOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Save a receipt: entry, leaf hash, inclusion proof and the signed checkpoint.

    Remote: the receipt is verified (signature, leaf hash, inclusion proof) and its
    checkpoint proven consistent with the verified one before it is written.
    """
    if server is None:
        with open_ledger(db, config, keys_dir) as ledger:
            doc = receipt_document(prove_entry(ledger, index))
    else:
        with remote(ctx, server) as client:
            doc = client.receipt(index)
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    verified = " (verified)" if server is not None else ""
    typer.echo(
        f"receipt for entry {index} (tree size {doc['tree_size']}) written to {out}{verified}"
    )


@app.command()
def checkpoint(
    ctx: typer.Context,
    server: Annotated[
        str | None, typer.Option("--server", help="AuditService HOST:PORT (default: settings).")
    ] = None,
    config: ConfigOpt = None,
    plaintext: PlaintextOpt = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    token: TokenOpt = None,
    vkey: VkeyOpt = None,
    state_dir: StateOpt = None,
    as_json: JsonOpt = False,
    note: Annotated[bool, typer.Option("--note", help="Print the signed note itself.")] = False,
) -> None:
    """Fetch the latest checkpoint, verify it and its consistency with the saved one, save it."""
    address = server or _default_server(config)
    with remote(ctx, address) as client:
        advance = client.advance
    assert advance is not None  # remote() synced
    cp, old = advance.current, advance.previous
    if note:
        typer.echo(cp.note, nl=False)
    elif as_json:
        typer.echo(
            json.dumps(
                {
                    "origin": cp.origin,
                    "size": cp.size,
                    "root": cp.root.hex(),
                    "previous_size": None if old is None else old.size,
                    "saved_to": str(advance.saved_to),
                    "note": cp.note,
                }
            )
        )
    else:
        since = "first checkpoint saved" if old is None else f"extends size {old.size}"
        typer.echo(
            f"OK: {cp.origin} size {cp.size} root {cp.root.hex()}; signature valid; {since}; "
            f"saved to {advance.saved_to}"
        )


@app.command()
def consistency(
    ctx: typer.Context,
    trusted_checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--trusted-checkpoint",
            help="Prove from this signed checkpoint file instead of the saved one.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    server: Annotated[
        str | None, typer.Option("--server", help="AuditService HOST:PORT (default: settings).")
    ] = None,
    config: ConfigOpt = None,
    plaintext: PlaintextOpt = False,
    ca: CaOpt = None,
    cert: CertOpt = None,
    key: KeyOpt = None,
    token: TokenOpt = None,
    vkey: VkeyOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Prove that the gateway's latest checkpoint extends a checkpoint you trust.

    The trusted one is --trusted-checkpoint FILE (a C2SP signed note, e.g. one saved by
    `share-gateway ledger checkpoint`) or the one this command saved last time. Exit 1 on a
    rollback or fork, with the saved checkpoint left as it was.
    """
    address = server or _default_server(config)
    with remote(ctx, address) as client:
        if trusted_checkpoint is not None:
            keys = vkey or _host_vkeys(config)
            trusted = open_note(trusted_checkpoint.read_text(encoding="utf-8"), keys)
            client.sync(trusted=trusted)
        advance = client.advance
    assert advance is not None  # remote() synced
    old, cp = advance.previous, advance.current
    if old is None:
        typer.echo(f"no checkpoint saved before: saved size {cp.size} as the starting point")
    else:
        typer.echo(f"OK: size {cp.size} extends size {old.size} (consistency proof verified)")


def _default_server(config: Path | None) -> str:
    return connect_address(load_settings(config).listen)


@app.command("verify-receipt")
def verify_receipt_cmd(
    file: Annotated[Path, typer.Argument(help="Receipt file (share-gateway audit receipt).")],
    key: Annotated[str, typer.Option("--key", help="Verifier key name+keyid+base64.")],
    witness_vkey: Annotated[
        list[str] | None,
        typer.Option("--witness-vkey", help="A witness's verifier key (repeat for each)."),
    ] = None,
    quorum: Annotated[
        int | None,
        typer.Option(
            "--quorum",
            min=0,
            help="Cosignatures of those witnesses required (default: all given keys).",
        ),
    ] = None,
) -> None:
    """Check a saved receipt OFFLINE: checkpoint signature, leaf hash, inclusion proof, and
    (with --witness-vkey) that enough witnesses cosigned its checkpoint."""
    witnesses = witness_vkey or []
    required = len(witnesses) if quorum is None else quorum
    if required > len(witnesses):
        fail(f"--quorum {required} needs at least {required} --witness-vkey")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        fail(f"cannot read receipt {file}: {e}")
    try:
        verified = verify_receipt(doc, key, witness_vkeys=witnesses, quorum=required)
    except VerificationError as e:
        typer.echo(f"FAILED: {e}")
        raise typer.Exit(1) from None
    entry = verified.entry
    typer.echo(
        f"OK: entry {verified.index} ({entry.get('decision')} {entry.get('mode')} to "
        f"{entry.get('partner_id') or '-'}, {entry.get('time')}) is in {verified.origin} "
        f"at tree size {verified.tree_size}; checkpoint signature valid"
        + (f"; cosigned by {required} of {len(witnesses)} witnesses" if required else "")
    )
