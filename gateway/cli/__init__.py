"""The ``share-gateway`` command line: one Typer app, one sub-app per domain."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from gateway.cli.console import console
from gateway.cli.demo import demo, health
from gateway.cli.serve import serve

DISTRIBUTION = "partner-share-gateway"

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Partner data-sharing gateway.")
app.command()(serve)
app.command()(demo)
app.command()(health)
app.command()(console)


def _print_version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"share-gateway {version(DISTRIBUTION)}")
        except PackageNotFoundError:  # running from a checkout that was never installed
            typer.echo("share-gateway (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Partner data-sharing gateway."""


# Sub-apps, one per domain (each module defines ``app``).
from gateway.cli import audit as _audit  # noqa: E402
from gateway.cli import certs as _certs  # noqa: E402
from gateway.cli import db as _db  # noqa: E402
from gateway.cli import policy as _policy  # noqa: E402
from ledger import cli as _ledger  # noqa: E402
from ledger.witness import cli as _witness  # noqa: E402

app.add_typer(_policy.app, name="policy", help="Policy bundle: tests, revision, evaluation.")
app.add_typer(_ledger.app, name="ledger", help="Audit ledger: verification and checkpoints.")
app.add_typer(
    _audit.app,
    name="audit",
    help="Audit: disclosures, reports, receipts; local, or verified over AuditService (--server).",
)
app.add_typer(_certs.app, name="certs", help="Dev CA, client certificates and bearer tokens.")
app.add_typer(_db.app, name="db", help="Database schema: migrations (Alembic).")
app.add_typer(_witness.app, name="witness", help="Checkpoint witness (c2sp.org/tlog-witness).")


def main() -> None:
    app()
