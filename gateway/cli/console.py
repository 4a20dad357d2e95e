"""``share-gateway console``: the auditor web console against a running gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.errors import GatewayError
from gateway.settings import Settings


def console(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML settings file.")
    ] = None,
    gateway: Annotated[
        str | None, typer.Option(help="The gateway's HOST:PORT (default localhost:50051).")
    ] = None,
    listen: Annotated[
        str | None, typer.Option(help="HOST:PORT for the console (default 127.0.0.1:8080).")
    ] = None,
) -> None:
    """Start the auditor web console: an AuditService client over mTLS (ADR 0008).

    With no certificates configured it uses the dev PKI under data_dir/pki (console-web).
    """
    section: dict[str, object] = {}
    if gateway:
        section["gateway"] = gateway
    if listen:
        section["listen"] = listen
    from gateway.console.serving import run_console

    try:
        settings = Settings.load(config, overrides={"console": section} if section else None)
        scheme = "https" if settings.console.https_cert_file else "http"
        typer.echo(f"share-gateway console on {scheme}://{settings.console.listen}/login")
        run_console(settings)
    except GatewayError as e:
        typer.echo(f"share-gateway console: {e}", err=True)
        raise typer.Exit(2) from e
