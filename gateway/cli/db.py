"""``share-gateway db ...``: the database schema (Alembic migrations, ``gateway.schema``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.errors import GatewayError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Database schema: migrations.")

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", help="Database URL (default: the gateway's ledger.url setting)."),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Gateway settings TOML file.", exists=True)
]


def _url(url: str | None, config: Path | None) -> str:
    from gateway.settings import Settings

    return url if url is not None else Settings.load(config).ledger_url


@app.command()
def upgrade(url: UrlOpt = None, config: ConfigOpt = None) -> None:
    """Migrate every table the gateway needs to the newest revision (run as the owner)."""
    from gateway.schema import upgrade as run

    try:
        revision = run(_url(url, config))
    except GatewayError as e:
        typer.echo(f"error: {e.reason}: {e.message}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"schema at revision {revision}")


@app.command()
def head() -> None:
    """Print the newest schema revision this gateway ships."""
    from gateway.schema import head_revision

    typer.echo(head_revision())


@app.command()
def revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision does.")],
) -> None:
    """Write a migration for what the models define beyond the newest revision (review it)."""
    from gateway.schema import new_revision

    try:
        path = new_revision(message)
    except GatewayError as e:
        typer.echo(f"error: {e.reason}: {e.message}", err=True)
        raise typer.Exit(2) from e
    typer.echo(str(path))
