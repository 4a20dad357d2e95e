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

from ledger.checkpoint import NoteVerifier, open_with_any
from ledger.errors import (
    LedgerError,
    LedgerKeyError,
    LedgerUnavailableError,
    WitnessUnavailableError,
)
from ledger.fsck import KnownCheckpoint, verify_url
from ledger.keys import SIGNING_KEY_FILE, load_signer, retired_vkeys, rotate_signer
from ledger.storage import create_ledger_engine
from ledger.witness.client import fetch_witnessed

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
    vkey: list[str] | None, keys_dir: Path | None, config: Path | None
) -> tuple[list[str], str]:
    """The log's verifier keys: explicit, else the key directory (current and retired keys).

    Never the key recorded in the database under test: whoever can rewrite the ledger can
    rewrite that record too.

    Raises:
        LedgerKeyError: neither is available.
    """
    if vkey:
        return vkey, "argument"
    try:
        kd = _keys_dir(keys_dir, config)
    except Exception as e:  # settings unusable: say so instead of guessing
        raise LedgerKeyError(f"no verifier key: settings unusable ({e}); pass --vkey") from e
    if not (kd / SIGNING_KEY_FILE).exists():
        raise LedgerKeyError(
            f"no verifier key: {kd / SIGNING_KEY_FILE} does not exist; pass --vkey (the "
            "ledger's verifier key, obtained out of band), --keys-dir or --config. The key "
            "stored in the database is never used: it is part of what is being verified"
        )
    return [load_signer(kd).vkey, *retired_vkeys(kd)], f"keys dir {kd}"


def _witnesses(
    urls: list[str] | None, vkeys: list[str] | None, config: Path | None
) -> tuple[list[str], list[str]]:
    """Witness URLs and cosignature keys: the options plus the gateway settings' witnesses."""
    out_urls, out_vkeys = list(urls or ()), list(vkeys or ())
    try:
        for w in _settings(config).ledger.witnesses:
            out_urls.append(w.url)
            out_vkeys.append(w.vkey)
    except Exception:  # no usable settings: the options alone
        if config is not None:
            raise
    return list(dict.fromkeys(out_urls)), list(dict.fromkeys(out_vkeys))


def _known_checkpoints(
    files: list[Path] | None, witness_urls: list[str], origin: str
) -> tuple[list[KnownCheckpoint], list[str]]:
    known: list[KnownCheckpoint] = []
    warnings: list[str] = []
    for f in files or ():
        try:
            known.append(KnownCheckpoint(source=f"trusted checkpoint {f}", note=f.read_text()))
        except (OSError, UnicodeDecodeError) as e:
            raise LedgerKeyError(f"cannot read trusted checkpoint {f}: {e}") from e
    for url in witness_urls:
        try:
            note = fetch_witnessed(url, origin)
        except WitnessUnavailableError as e:
            warnings.append(f"witness {url} not consulted: {e.message}")
            continue
        if note is None:
            warnings.append(f"witness {url} has cosigned no checkpoint of {origin}")
        else:
            known.append(KnownCheckpoint(source=f"witness {url}", note=note))
    return known, warnings


@app.command()
def verify(
    db: DbOpt = None,
    config: ConfigOpt = None,
    vkey: Annotated[
        list[str] | None,
        typer.Option("--vkey", help="Verifier key name+keyid+base64 (repeat for rotated keys)."),
    ] = None,
    keys_dir: KeysOpt = None,
    trusted_checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-checkpoint",
            help="A checkpoint note saved earlier (or from a receipt); the log must extend it.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    witness_url: Annotated[
        list[str] | None,
        typer.Option("--witness-url", help="Witness to ask for its latest cosigned checkpoint."),
    ] = None,
    witness_vkey: Annotated[
        list[str] | None,
        typer.Option("--witness-vkey", help="A witness's cosignature verifier key (repeat)."),
    ] = None,
    save_checkpoint: Annotated[
        Path | None,
        typer.Option("--save-checkpoint", help="If OK, save the latest checkpoint note here."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every leaf hash, node, root and the subject index; check every checkpoint
    with keys held outside the database, and that the log extends every checkpoint known
    from outside it (saved, from receipts, from witnesses).

    Exits 0 only if everything holds; otherwise 1, naming the first bad index.
    """
    try:
        url = _db_url(db, config)
        key, source = _resolve_vkey(vkey, keys_dir, config)
        urls, wkeys = _witnesses(witness_url, witness_vkey, config)
        origin = key[0].split("+", 1)[0]
        known, warnings = _known_checkpoints(trusted_checkpoint, urls, origin)
        report = verify_url(read_only_url(url), vkey=key, known=known, witness_vkeys=wkeys)
    except LedgerError as e:
        _fail(e.diagnostics(), as_json=as_json)
        return
    if report.ok and save_checkpoint is not None:
        _save_latest(url, key, save_checkpoint)
    if as_json:
        out = json.loads(report.to_json())
        out["vkey_source"] = source
        out["warnings"] = warnings
        typer.echo(json.dumps(out, indent=2, sort_keys=True))
    else:
        typer.echo(report.summary())
        for w in warnings:
            typer.echo(f"warning: {w}", err=True)
        for p in report.problems[1:10] if not report.ok else []:
            where = f"index {p.index}" if p.index is not None else "ledger"
            typer.echo(f"  also at {where}: {p.kind}: {p.detail}")
    raise typer.Exit(0 if report.ok else 1)


def _save_latest(url: str, vkeys: list[str], path: Path) -> None:
    """Write the latest stored checkpoint (just verified) for the next ``--trusted-checkpoint``."""
    engine = create_ledger_engine(read_only_url(url))
    try:
        with engine.connect() as conn:
            note = conn.execute(
                sa.text("SELECT note FROM ledger_checkpoint ORDER BY size DESC LIMIT 1")
            ).scalar()
    finally:
        engine.dispose()
    if note is not None:
        open_with_any([NoteVerifier.parse(v) for v in vkeys], str(note))
        path.write_text(str(note))


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
