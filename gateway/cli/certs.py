"""``share-gateway certs``: the demo's dev CA and bearer tokens (issue 5.1, 5.3).

Every default comes from the gateway's settings (``--config``, then ``SHARE_GATEWAY_*``), so
``certs init`` writes the same ``data_dir/pki`` folder that ``serve`` uses, from any folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.connection import ConfigOpt, fail, load_settings
from gateway.errors import GatewayError
from gateway.registry import Registry
from gateway.security.devca import (
    DEMO_ADMINS,
    DEMO_AUDITORS,
    DEMO_PARTNERS,
    DEMO_SERVICES,
    init_dev_pki,
)
from gateway.security.identity import Role
from gateway.security.keys import PseudonymKeys
from gateway.security.tokens import mint_token
from ledger import LedgerError
from ledger.cli import existing_database

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command()
def init(
    dir: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write certificates and keys (default: data_dir/pki)."),
    ] = None,
    partner: Annotated[
        list[str] | None, typer.Option("--partner", help="Partner id (repeatable).")
    ] = None,
    service: Annotated[
        list[str] | None, typer.Option("--service", help="Service name (repeatable).")
    ] = None,
    auditor: Annotated[
        list[str] | None, typer.Option("--auditor", help="Auditor name (repeatable).")
    ] = None,
    admin: Annotated[
        list[str] | None, typer.Option("--admin", help="Admin name (repeatable).")
    ] = None,
    trust_domain: Annotated[
        str | None, typer.Option(help="SPIFFE trust domain (default: tls.trust_domain).")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Create a dev CA, a server certificate for localhost and client certificates.

    Defaults to the demo identities. Keys are written 0600, the directory 0700. An existing
    CA in DIR is reused.
    """
    settings = load_settings(config)
    directory = dir if dir is not None else settings.pki_dir
    written = init_dev_pki(
        directory,
        partners=partner or DEMO_PARTNERS,
        services=service or DEMO_SERVICES,
        auditors=auditor or DEMO_AUDITORS,
        admins=admin or DEMO_ADMINS,
        trust_domain=trust_domain or settings.tls.trust_domain,
    )
    for path in written:
        typer.echo(str(path))
    if directory.absolute() != settings.pki_dir:
        typer.echo(
            "\nServe with mTLS:\n"
            f"  SHARE_GATEWAY_TLS__CERT_FILE={directory}/server.crt "
            f"SHARE_GATEWAY_TLS__KEY_FILE={directory}/server.key \\\n"
            f"  SHARE_GATEWAY_TLS__CLIENT_CA_FILE={directory}/ca.crt "
            "SHARE_GATEWAY_TLS__REQUIRE_CLIENT_CERT=true share-gateway serve"
        )


@app.command("mint-token")
def mint_token_command(
    principal_id: Annotated[str, typer.Argument(help="e.g. svc:checkout")],
    role: Annotated[Role, typer.Option(help="Role of the principal.")],
    tokens_file: Annotated[
        Path | None,
        typer.Option(help="JSON file of token hashes (default: tokens_file, else data_dir's)."),
    ] = None,
    partner_id: Annotated[str | None, typer.Option(help="For role partner.")] = None,
    label: Annotated[str, typer.Option(help="Free text to recognise the token.")] = "",
    config: ConfigOpt = None,
) -> None:
    """Mint a bearer token: prints it once and stores only its SHA-256 hash."""
    settings = load_settings(config)
    path = tokens_file or settings.tokens_file or settings.data_dir / "tokens.json"
    try:
        token = mint_token(
            path, principal_id=principal_id, role=role, partner_id=partner_id, label=label
        )
    except GatewayError as e:
        fail(e.message)
    typer.echo(token)
    if settings.tokens_file is None:
        typer.echo(
            f"(tokens are off until the gateway is served with SHARE_GATEWAY_TOKENS_FILE={path})",
            err=True,
        )


@app.command("rotate-key")
def rotate_key(
    partner_id: Annotated[str, typer.Argument(help="Partner whose pseudonym key to rotate.")],
    keys_dir: Annotated[
        Path | None,
        typer.Option(help="Pseudonym key directory (default: data_dir/keys/pseudonym)."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Rotate a registered partner's pseudonymization key; prints the new key id.

    Old keys are kept. A running gateway picks the new key up on its next share to that
    partner.
    """
    settings = load_settings(config)
    try:
        registry = Registry.open(existing_database(settings.ledger_url))
        try:
            known = registry.partner(partner_id) is not None
        finally:
            registry.close()
        if not known:
            fail(f"no partner {partner_id!r} in the registry of {settings.ledger_url}")
        directory = keys_dir if keys_dir is not None else settings.keys_dir / "pseudonym"
        typer.echo(PseudonymKeys(directory=directory).rotate(partner_id))
    except GatewayError as e:
        fail(e.message)
    except LedgerError as e:
        fail(f"{e.message} (start the gateway once: it creates the database and its registry)")
