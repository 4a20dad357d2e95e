"""``share-gateway witness ...``: run a C2SP tlog-witness for the gateway's ledger.

The witness is a separate process with its own key (``witness.key``) and its own store
(``witness.db``) in its own data directory; it trusts only the log keys given with ``--log``.
Exit codes: 0 stopped cleanly; 2 unusable arguments or key.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from ledger.checkpoint import NoteVerifier
from ledger.errors import LedgerError
from ledger.keys import load_or_create_cosigner
from ledger.witness.http import create_witness_server, serve_in_thread
from ledger.witness.service import Witness, WitnessStore

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Checkpoint witness (c2sp.org/tlog-witness)."
)

KEY_FILE = "witness.key"
STORE_FILE = "witness.db"

DataDirOpt = Annotated[
    Path, typer.Option("--data-dir", help="The witness's own directory (key and store).")
]
NameOpt = Annotated[str, typer.Option("--name", help="Witness key name, e.g. witness.example/w1.")]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command()
def serve(
    data_dir: DataDirOpt,
    name: NameOpt,
    log: Annotated[
        list[str],
        typer.Option("--log", help="Verifier key of a log to witness (repeat; origin = name)."),
    ],
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT (port 0: any).")] = (
        "127.0.0.1:7380"
    ),
) -> None:
    """Serve add-checkpoint and the monitoring checkpoint endpoint until SIGINT/SIGTERM."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        cosigner = load_or_create_cosigner(data_dir / KEY_FILE, name=name)
        logs: dict[str, list[NoteVerifier]] = {}
        for vkey in log:
            v = NoteVerifier.parse(vkey)
            logs.setdefault(v.name, []).append(v)
        store = WitnessStore(data_dir / STORE_FILE)
        server, port = create_witness_server(
            listen, Witness(cosigner=cosigner, logs=logs, store=store)
        )
    except LedgerError as e:
        _fail(e.diagnostics())
        return
    except (OSError, ValueError) as e:
        _fail(f"cannot serve on {listen}: {e}")
        return
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    serve_in_thread(server)
    host = listen.rpartition(":")[0]
    typer.echo(f"witness {name} listening on http://{host}:{port}", err=True)
    typer.echo(f"verifier key: {cosigner.vkey}", err=True)
    stop.wait()
    server.shutdown()
    store.close()


@app.command("verifier-key")
def verifier_key(data_dir: DataDirOpt, name: NameOpt) -> None:
    """Print the witness's cosignature verifier key (creating the key on first use)."""
    try:
        typer.echo(load_or_create_cosigner(data_dir / KEY_FILE, name=name).vkey)
    except LedgerError as e:
        _fail(e.diagnostics())
