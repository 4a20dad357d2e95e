"""``share-gateway ledger ...``: verify the stored ledger, print checkpoints and keys.

Exit codes: 0 all checks held; 1 verification failed (the first bad index is named);
2 the ledger could not be read or the arguments are unusable.

Read-only commands never create anything: a SQLite database that does not exist is an error
("no such database"), and ``verify`` opens SQLite with ``mode=ro``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
import typer

from ledger.errors import LedgerError, LedgerUnavailableError
from ledger.fsck import verify_url
from ledger.keys import SIGNING_KEY_FILE, load_signer, retired_vkeys, rotate_signer
from ledger.storage import create_ledger_engine

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Audit ledger: verification and checkpoints."
)

DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Ledger database URL (default: the gateway's settings)."),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Gateway settings TOML file.", exists=True)
]
KeysOpt = Annotated[
    Path | None, typer.Option("--keys-dir", help="Key directory (default: the gateway's).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _settings(config: Path | None) -> Any:
    # Imported lazily: the ledger does not depend on the gateway except for its defaults.
    from gateway.settings import Settings

    return Settings.load(config)


def _db_url(db: str | None, config: Path | None) -> str:
    return existing_database(db if db is not None else str(_settings(config).ledger_url))


def existing_database(url: str) -> str:
    """``url`` unchanged, after checking that a SQLite database file exists (never create one).

    Raises:
        LedgerUnavailableError: the SQLite file does not exist.
    """
    path = _sqlite_file(url)
    if path is not None and not path.is_file():
        raise LedgerUnavailableError(f"no such database: {path}", reason="ledger.no_database")
    return url


def read_only_url(url: str) -> str:
    """A SQLite URL opened read-only (``mode=ro`` URI); other URLs unchanged."""
    path = _sqlite_file(url)
    return url if path is None else f"sqlite:///file:{path}?mode=ro&uri=true"


def _sqlite_file(url: str) -> Path | None:
    try:
        u = sa.make_url(url)
    except sa.exc.ArgumentError:
        return None  # reported by the storage layer with its own message
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    return Path(u.database)


def _keys_dir(keys_dir: Path | None, config: Path | None) -> Path:
    return keys_dir if keys_dir is not None else Path(_settings(config).keys_dir)


def _fail(message: str, *, as_json: bool, code: int = 2) -> None:
    if as_json:
        typer.echo(json.dumps({"ok": False, "error": message}))
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _resolve_vkey(
    vkey: list[str] | None, keys_dir: Path | None, config: Path | None, url: str
) -> tuple[list[str] | str | None, str]:
    """Pick the verifier keys: explicit, else the key directory (current and retired keys),
    else the one recorded in the db."""
    if vkey:
        return vkey, "argument"
    try:
        kd = _keys_dir(keys_dir, config)
        if (kd / SIGNING_KEY_FILE).exists():
            return [load_signer(kd).vkey, *retired_vkeys(kd)], f"keys dir {kd}"
    except Exception:  # settings unusable: fall through to the database's record
        pass
    engine = create_ledger_engine(read_only_url(url))
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT vkey FROM ledger_sequencer WHERE id = 1")).first()
    except sa.exc.SQLAlchemyError:
        row = None
    finally:
        engine.dispose()
    if row is not None:
        return str(row[0]), "database record (not independent of the data checked)"
    return None, "none"


@app.command()
def verify(
    db: DbOpt = None,
    config: ConfigOpt = None,
    vkey: Annotated[
        list[str] | None,
        typer.Option("--vkey", help="Verifier key name+keyid+base64 (repeat for rotated keys)."),
    ] = None,
    keys_dir: KeysOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every leaf hash, node and root; check every signed checkpoint.

    Exits 0 only if everything holds; otherwise 1, naming the first bad index.
    """
    try:
        url = _db_url(db, config)
        key, source = _resolve_vkey(vkey, keys_dir, config, url)
        report = verify_url(read_only_url(url), vkey=key)
    except LedgerError as e:
        _fail(e.diagnostics(), as_json=as_json)
        return
    if as_json:
        out = json.loads(report.to_json())
        out["vkey_source"] = source
        typer.echo(json.dumps(out, indent=2, sort_keys=True))
    else:
        typer.echo(report.summary())
        if report.ok and not report.signatures_checked:
            typer.echo("warning: no verifier key; checkpoint signatures were not checked")
        for p in report.problems[1:10] if not report.ok else []:
            where = f"index {p.index}" if p.index is not None else "ledger"
            typer.echo(f"  also at {where}: {p.kind}: {p.detail}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def checkpoint(
    db: DbOpt = None,
    config: ConfigOpt = None,
    keys_dir: KeysOpt = None,
    sign: Annotated[
        bool, typer.Option("--sign", help="Sign a new checkpoint first if the log grew.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the latest signed checkpoint (a C2SP signed note)."""
    from ledger.log import Ledger

    try:
        url = _db_url(db, config)
        kd = _keys_dir(keys_dir, config)
        signer = load_signer(kd)
        with Ledger.open(url, keys_dir=kd, origin=signer.name) as led:
            cp = led.checkpoint() if sign else led.latest_checkpoint()
    except LedgerError as e:
        _fail(e.diagnostics(), as_json=as_json)
        return
    if cp is None:
        _fail("no checkpoint has been signed yet (use --sign)", as_json=as_json, code=1)
        return
    if as_json:
        typer.echo(
            json.dumps(
                {"origin": cp.origin, "size": cp.size, "root": cp.root.hex(), "note": cp.note}
            )
        )
    else:
        typer.echo(cp.note, nl=False)


@app.command("verifier-key")
def verifier_key(config: ConfigOpt = None, keys_dir: KeysOpt = None) -> None:
    """Print the checkpoint verifier key (name+keyid+base64) to give to auditors."""
    try:
        typer.echo(load_signer(_keys_dir(keys_dir, config)).vkey)
    except LedgerError as e:
        _fail(e.diagnostics(), as_json=False)


@app.command("rotate-key")
def rotate_key(config: ConfigOpt = None, keys_dir: KeysOpt = None) -> None:
    """Replace the checkpoint signing key; print the new verifier key.

    The old key's verifier key is kept in the retired list so old checkpoints and receipts
    still verify; restart the gateway to sign new checkpoints with the new key.
    """
    try:
        kd = _keys_dir(keys_dir, config)
        old = load_signer(kd)
        new = rotate_signer(kd, name=old.name)
    except LedgerError as e:
        _fail(e.diagnostics(), as_json=False)
        return
    typer.echo(f"retired: {old.vkey}")
    typer.echo(f"current: {new.vkey}")


@app.command("provision-postgres")
def provision(
    admin_url: Annotated[str, typer.Option("--admin-url", help="URL of the tables' owner.")],
    role: Annotated[str, typer.Option("--role", help="Restricted role for the gateway.")],
) -> None:
    """Create every table the gateway needs (schema migrations) and a role that may only
    read and append to the ledger (no UPDATE, DELETE, DROP, TRUNCATE or trigger changes)."""
    # The gateway's schema (ledger, registry, outbox tables): imported lazily, like settings.
    from gateway.errors import GatewayError
    from gateway.schema import provision_postgres

    try:
        provision_postgres(admin_url, role=role)
    except GatewayError as e:
        _fail(f"{e.reason}: {e.message}", as_json=False)
    typer.echo(f"provisioned role {role}")
