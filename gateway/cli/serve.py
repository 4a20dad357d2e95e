"""``share-gateway serve``: run a gateway process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.errors import GatewayError
from gateway.logs import configure_logging
from gateway.settings import Settings
from ledger import LedgerError


def serve(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML settings file.")
    ] = None,
    listen: Annotated[str | None, typer.Option(help="HOST:PORT to listen on.")] = None,
    plaintext: Annotated[
        bool, typer.Option("--plaintext", help="No TLS (loopback listeners only).")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Gateway processes sharing the port (PostgreSQL only)."),
    ] = None,
) -> None:
    """Start the gateway (default: 127.0.0.1:50051, SQLite ledger, embedded Rego, demo registry)."""
    overrides: dict[str, object] = {}
    if listen:
        overrides["listen"] = listen
    if plaintext:
        overrides["plaintext"] = True
    if workers is not None:
        overrides["workers"] = workers
    from gateway.server import serve as run
    from gateway.server import with_dev_pki

    try:
        settings = Settings.load(config, overrides=overrides)
        configure_logging(level=settings.log_level, json=settings.log_json)
        if settings.tls.cert_file is None and not settings.plaintext:
            settings = with_dev_pki(settings)
        run(settings)
    except (GatewayError, LedgerError) as e:
        typer.echo(f"share-gateway: {e}", err=True)
        raise typer.Exit(2) from e
