"""How a client command reaches a running gateway, and what it says when it cannot.

Every client command (``health``, ``demo``, ``audit ... --server``) takes the same options:
``--server HOST:PORT`` (default: the settings' ``listen`` address), ``--config FILE``,
``--plaintext`` (loopback only), ``--ca/--cert/--key`` (default: the development PKI under
``data_dir/pki``, the one ``serve`` creates) and ``--token`` (or ``GATEWAY_TOKEN``) for a
bearer token instead of a client certificate. Nothing depends on the current folder.

A failure to connect or call is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import grpc
import typer

from gateway.errors import GatewayError
from gateway.security.tls import channel_credentials
from gateway.settings import Settings

EXIT_UNUSABLE = 2
TOKEN_ENV = "GATEWAY_TOKEN"

ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="Gateway HOST:PORT (default: listen address of the settings)."),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Gateway settings TOML file.", exists=True, dir_okay=False),
]
PlaintextOpt = Annotated[
    bool, typer.Option("--plaintext", help="No TLS (a gateway serving plaintext on loopback).")
]
CaOpt = Annotated[
    Path | None, typer.Option("--ca", help="CA certificate of the server (default: dev PKI).")
]
CertOpt = Annotated[
    Path | None, typer.Option("--cert", help="Client certificate (default: dev PKI's).")
]
KeyOpt = Annotated[Path | None, typer.Option("--key", help="Client key (default: dev PKI's).")]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar=TOKEN_ENV, help="Bearer token instead of a client cert."),
]


def fail(message: str, code: int = EXIT_UNUSABLE) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_settings(config: Path | None) -> Settings:
    """The gateway's settings (file, then environment), or a one-line error."""
    try:
        return Settings.load(config)
    except GatewayError as e:
        fail(e.message)


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """A gateway to call and how to authenticate to it."""

    address: str
    credentials: grpc.ChannelCredentials | None  # None: plaintext
    token: str | None = None

    def channel(self) -> grpc.Channel:
        if self.credentials is None:
            return grpc.insecure_channel(self.address)
        return grpc.secure_channel(self.address, self.credentials)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Per-call metadata: the bearer token, if any."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def resolve_target(
    *,
    identity: str,
    server: str | None,
    config: Path | None,
    plaintext: bool,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    token: str | None = None,
) -> Target:
    """Where and how to call, from the options and the settings.

    Args:
        identity: dev PKI file stem of the default client certificate, e.g.
            ``auditor-audit-team``; unused with a token or explicit ``--cert/--key``.
    """
    settings = load_settings(config)
    address = server or connect_address(settings.listen)
    if plaintext or (settings.plaintext and server is None):
        return Target(address=address, credentials=None, token=token)
    pki = settings.pki_dir
    ca = ca or pki / "ca.crt"
    if token is None:
        cert = cert or pki / f"{identity}.crt"
        key = key or pki / f"{identity}.key"
    for path, what in ((ca, "CA certificate"), (cert, "client certificate"), (key, "client key")):
        if path is not None and not path.is_file():
            fail(
                f"no {what} at {path}: start the gateway once (it creates the dev PKI under "
                f"{pki}), run `share-gateway certs init`, or pass --ca/--cert/--key or --token"
            )
    try:
        creds = channel_credentials(ca=ca, cert=cert, key=key)
    except (OSError, ValueError) as e:
        fail(f"cannot use the TLS files: {e}")
    return Target(address=address, credentials=creds, token=token)


def command_target(ctx: typer.Context, *, identity: str, server: str | None = None) -> Target:
    """``resolve_target`` with the command's own connection options (``ctx.params``)."""
    p = ctx.params
    return resolve_target(
        identity=identity,
        server=server or p["server"],
        config=p["config"],
        plaintext=p["plaintext"],
        ca=p["ca"],
        cert=p["cert"],
        key=p["key"],
        token=p["token"],
    )


def connect_address(listen: str) -> str:
    """Where a client reaches a gateway listening on ``listen``."""
    host, _, port = listen.rpartition(":")
    # A wildcard listener is reached on loopback (the dev server certificate names localhost).
    if host in ("0.0.0.0", "[::]", "::", ""):
        host = "localhost"
    return f"{host}:{port}"


def rpc_failure(error: grpc.RpcError, address: str) -> str:
    """One line for a failed call: the status code and the gateway's message."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    details = " ".join(details.split())
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return f"gateway at {address} is not reachable ({code.name}): {details}"
    name = code.name if code is not None else "ERROR"
    return f"gateway at {address} answered {name}: {details}"


@contextmanager
def reporting(target: Target) -> Iterator[None]:
    """Turn a failed call into a one-line error and exit code 2."""
    try:
        yield
    except grpc.RpcError as e:
        fail(rpc_failure(e, target.address))
