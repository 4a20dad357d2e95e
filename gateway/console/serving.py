"""Run the console under uvicorn: from settings (the CLI) or on a bound socket (tests)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from gateway.console.app import create_app
from gateway.console.client import AuditClient, client_files
from gateway.errors import ConfigError
from gateway.security.tls import is_loopback
from gateway.settings import Settings


def console_app(settings: Settings, *, https: bool) -> object:
    """The console app for ``settings`` (mTLS files resolved now, so errors show at start).

    Raises:
        ConfigError: naming the bad ``console.*`` field.
    """
    c = settings.console
    files = client_files(c, pki=settings.pki_dir)

    def connect() -> AuditClient:
        return AuditClient.connect(target=c.gateway, files=files, timeout_s=c.rpc_timeout_s)

    return create_app(settings=c, connect=connect, https=https)


def run_console(settings: Settings) -> None:
    """Serve the console on ``console.listen`` until interrupted.

    Raises:
        ConfigError: HTTP on a non-loopback address, half an HTTPS pair, bad mTLS files.
    """
    c = settings.console
    host, _, port = c.listen.rpartition(":")
    if (c.https_cert_file is None) != (c.https_key_file is None):
        raise ConfigError(
            "invalid setting console.https_cert_file: set both https_cert_file and https_key_file"
        )
    https = c.https_cert_file is not None
    if not https and not is_loopback(host):
        raise ConfigError(
            "invalid setting console.listen: plain HTTP only on a loopback address; "
            "set console.https_cert_file and console.https_key_file"
        )
    app = console_app(settings, https=https)
    uvicorn.run(
        app,  # type: ignore[arg-type]
        host=host.strip("[]"),
        port=int(port),
        ssl_certfile=c.https_cert_file,
        ssl_keyfile=c.https_key_file,
        log_level=settings.log_level,
        server_header=False,
    )


@dataclass(frozen=True)
class RunningConsole:
    """A console served on 127.0.0.1 with an OS-assigned port."""

    url: str


@contextmanager
def running_console(app: object) -> Iterator[RunningConsole]:
    """Serve ``app`` on 127.0.0.1:0 in a thread (tests and demos); stop on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on")  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _wait(lambda: server.started or not thread.is_alive())
    if not server.started:
        raise RuntimeError("console did not start")
    try:
        yield RunningConsole(url=f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait(done: Callable[[], bool], timeout_s: float = 10.0) -> None:
    event = threading.Event()
    for _ in range(int(timeout_s / 0.02)):
        if done():
            return
        event.wait(0.02)
