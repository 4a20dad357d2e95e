"""``share-gateway certs``: the demo's dev CA and bearer tokens (issue 5.1, 5.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.errors import GatewayError
from gateway.security.devca import (
    DEFAULT_TRUST_DOMAIN,
    DEMO_ADMINS,
    DEMO_AUDITORS,
    DEMO_PARTNERS,
    DEMO_SERVICES,
    init_dev_pki,
)
from gateway.security.identity import Role
from gateway.security.keys import PseudonymKeys
from gateway.security.tokens import mint_token

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command()
def init(
    dir: Annotated[
        Path, typer.Option("--dir", help="Where to write certificates and keys.")
    ] = Path(".data/certs"),
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
    trust_domain: Annotated[str, typer.Option(help="SPIFFE trust domain.")] = DEFAULT_TRUST_DOMAIN,
) -> None:
    """Create a dev CA, a server certificate for localhost and client certificates.

    Defaults to the demo identities. Keys are written 0600, the directory 0700. An existing
    CA in DIR is reused.
    """
    written = init_dev_pki(
        dir,
        partners=partner or DEMO_PARTNERS,
        services=service or DEMO_SERVICES,
        auditors=auditor or DEMO_AUDITORS,
        admins=admin or DEMO_ADMINS,
        trust_domain=trust_domain,
    )
    for path in written:
        typer.echo(str(path))
    typer.echo(
        "\nServe with mTLS:\n"
        f"  SHARE_GATEWAY_TLS__CERT_FILE={dir}/server.crt "
        f"SHARE_GATEWAY_TLS__KEY_FILE={dir}/server.key \\\n"
        f"  SHARE_GATEWAY_TLS__CLIENT_CA_FILE={dir}/ca.crt "
        "SHARE_GATEWAY_TLS__REQUIRE_CLIENT_CERT=true share-gateway serve"
    )


@app.command("mint-token")
def mint_token_command(
    principal_id: Annotated[str, typer.Argument(help="e.g. svc:checkout")],
    role: Annotated[Role, typer.Option(help="Role of the principal.")],
    tokens_file: Annotated[Path, typer.Option(help="JSON file of token hashes.")] = Path(
        ".data/tokens.json"
    ),
    partner_id: Annotated[str | None, typer.Option(help="For role partner.")] = None,
    label: Annotated[str, typer.Option(help="Free text to recognise the token.")] = "",
) -> None:
    """Mint a bearer token: prints it once and stores only its SHA-256 hash."""
    try:
        token = mint_token(
            tokens_file, principal_id=principal_id, role=role, partner_id=partner_id, label=label
        )
    except GatewayError as e:
        typer.echo(f"error: {e.message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(token)


@app.command("rotate-key")
def rotate_key(
    partner_id: Annotated[str, typer.Argument(help="Partner whose pseudonym key to rotate.")],
    keys_dir: Annotated[
        Path, typer.Option(help="Pseudonym key directory (settings.keys_dir / 'pseudonym').")
    ] = Path(".data/keys/pseudonym"),
) -> None:
    """Rotate a partner's pseudonymization key; prints the new key id. Old keys are kept.

    A running gateway picks the new key up on its next share to that partner.
    """
    try:
        typer.echo(PseudonymKeys(directory=keys_dir).rotate(partner_id))
    except GatewayError as e:
        typer.echo(f"error: {e.message}", err=True)
        raise typer.Exit(2) from None
