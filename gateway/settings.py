"""Typed, explicit settings.

Built once by ``Settings.load`` from an optional TOML file, then ``SHARE_GATEWAY_*``
environment variables (nested fields with ``__``, e.g. ``SHARE_GATEWAY_POLICY__OPA_URL``;
parsed by pydantic-settings), then explicit overrides (command-line flags), validated at start
with errors that name the bad field, then passed into keyword-only constructors. Nothing reads
the environment at import time.

Paths never depend on the folder a command runs in: a relative path in a settings file is
relative to that file's folder; one from the environment or a flag is relative to the current
folder (``data_dir`` is made absolute when the settings are loaded); the default ``data_dir``
is ``.data`` in the source checkout, beside ``policies_rego/``.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import limits
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from gateway.errors import ConfigError
from ledger.cosignature import CosignatureVerifier
from ledger.errors import CheckpointFormatError

ENV_PREFIX = "SHARE_GATEWAY_"
REPO_ROOT = Path(__file__).resolve().parent.parent


def _host_port(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:50051")
    return v


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TLSSettings(_Section):
    """Transport security of the listener (issue 5)."""

    cert_file: Path | None = None
    key_file: Path | None = None
    # CA that issues client certificates; set => mTLS (needs require_client_cert = true).
    client_ca_file: Path | None = None
    require_client_cert: bool = False
    # SPIFFE trust domain of client certificates: SAN URI spiffe://<trust_domain>/<kind>/<name>.
    trust_domain: str = "share-gateway.local"


class LimitsSettings(_Section):
    """Input limits: each breach is INVALID_ARGUMENT or RESOURCE_EXHAUSTED, never a crash."""

    max_message_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    max_records_per_request: int = Field(default=5_000, gt=0)
    max_records_per_stream: int = Field(default=1_000_000, gt=0)
    max_fields_per_record: int = Field(default=64, gt=0)
    max_field_value_bytes: int = Field(default=4_096, gt=0)
    max_concurrent_rpcs: int = Field(default=256, gt=0)


class PolicySettings(_Section):
    """Where policies come from and which engine evaluates them."""

    dir: Path = REPO_ROOT / "policies_rego"
    # In-process engine: regorus (default) or OPA's own Go evaluator (docs/adr/0001, 0006).
    engine: Literal["regorus", "opa"] = "regorus"
    # Set => decisions come from this OPA server's Data API instead of the embedded engine.
    opa_url: str | None = None
    opa_timeout_s: float = Field(default=1.0, gt=0)
    # The OPA server runs the archive of `policy build` (opa run --bundle / bundle service):
    # check its revision before serving and on every decision instead of pushing modules.
    opa_bundle: bool = False
    # Reload policies when their files change (polling interval, seconds; 0 disables).
    watch_interval_s: float = Field(default=2.0, ge=0)

    @field_validator("opa_url")
    @classmethod
    def _opa_url_is_http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class WitnessSettings(_Section):
    """A checkpoint witness (c2sp.org/tlog-witness): where it listens and its key."""

    url: str
    # Its cosignature/v1 verifier key "name+keyid+base64" (`share-gateway witness verifier-key`).
    vkey: str
    # Its key name; must match the vkey's (a typo check).
    name: str

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @field_validator("vkey")
    @classmethod
    def _vkey_parses(cls, v: str) -> str:
        try:
            CosignatureVerifier.parse(v)
        except CheckpointFormatError as e:
            raise ValueError(e.message) from e
        return v


class LedgerSettings(_Section):
    """Audit ledger storage."""

    # SQLAlchemy URL; None => SQLite file under data_dir. PostgreSQL: postgresql+psycopg://...
    url: str | None = None
    origin: str = "share-gateway.local/audit-ledger"
    # Group commit: at most this many entries per transaction.
    max_batch: int = Field(default=1_000, gt=0)
    # Appends waiting beyond this many are refused (pushback), never dropped.
    max_pending: int = Field(default=50_000, gt=0)
    # Witnesses the latest checkpoint is submitted to, in the background (docs/ledger.md).
    witnesses: list[WitnessSettings] = []
    # k of n: a checkpoint counts as published once this many witnesses cosigned it.
    witness_quorum: int = Field(default=1, ge=1)
    # Pause between submission rounds.
    witness_interval_s: float = Field(default=1.0, gt=0)
    # At start, submit the current checkpoint to every witness and refuse to start if one has
    # cosigned a larger or another tree (a rolled-back or forked database). Turn off only to
    # inspect such a database.
    witness_check_at_start: bool = True

    @model_validator(mode="after")
    def _quorum_fits(self) -> LedgerSettings:
        if self.witnesses and self.witness_quorum > len(self.witnesses):
            raise ValueError(f"witness_quorum exceeds the {len(self.witnesses)} witness(es)")
        for w in self.witnesses:
            if w.vkey.split("+", 1)[0] != w.name:
                raise ValueError(f"witness {w.name!r}: its vkey is for another name")
        return self


class OutboxSettings(_Section):
    """Partner outboxes (R17): staged shares waiting for their partner to pull them."""

    # A staged share not pulled and acknowledged within this many hours is never served and
    # is purged (storage limited to what the purpose needs, §四.(三)).
    retention_hours: float = Field(default=7 * 24, gt=0)


class ConsoleSettings(_Section):
    """The auditor web console (``share-gateway console``, ADR 0008): an AuditService client
    over mTLS that holds no database credentials."""

    listen: str = "127.0.0.1:8080"
    # The gateway's gRPC address.
    gateway: str = "localhost:50051"
    # mTLS to the gateway. Unset: the dev PKI under data_dir/pki (ca.crt, console-web.*).
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # HTTPS for the console itself (cookies are then Secure); required unless listen is
    # a loopback address.
    https_cert_file: Path | None = None
    https_key_file: Path | None = None
    # A session ends after this long without a request, and in any case after session_max_s.
    session_idle_s: float = Field(default=15 * 60, gt=0)
    session_max_s: float = Field(default=8 * 3600, gt=0)
    # Live sessions kept at most; when full, the oldest anonymous one makes room.
    max_sessions: int = Field(default=10_000, gt=0)
    # Login attempts allowed per client address in a moving window (a `limits` rate string);
    # a valid token clears the address's count.
    login_rate: str = "10 per minute"
    rpc_timeout_s: float = Field(default=10.0, gt=0)
    # Refusals and charts read at most this many entries per view (a notice says so).
    max_scan_entries: int = Field(default=100_000, gt=0)

    @field_validator("listen", "gateway")
    @classmethod
    def _has_port(cls, v: str) -> str:
        return _host_port(v)

    @field_validator("login_rate")
    @classmethod
    def _is_rate(cls, v: str) -> str:
        try:
            limits.parse(v)
        except ValueError as e:
            raise ValueError(f"not a rate such as '10 per minute': {v!r}") from e
        return v


class Settings(BaseSettings):
    """All settings of one gateway process."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", env_prefix=ENV_PREFIX, env_nested_delimiter="__"
    )

    listen: str = "127.0.0.1:50051"
    data_dir: Path = REPO_ROOT / ".data"
    # Serve without TLS. Allowed only when ``listen`` is a loopback address.
    plaintext: bool = False
    # Readable registry seed loaded at start when the registry is empty (demo partners etc.).
    seed_file: Path | None = REPO_ROOT / "gateway" / "demo" / "registry.toml"
    # Bearer tokens file (issue 5): role and principal per token hash.
    tokens_file: Path | None = None
    log_level: str = "info"
    log_json: bool = True
    grace_period_s: float = Field(default=5.0, ge=0)
    # Few threads: on small machines more only add GIL and futex hand-offs (docs/benchmarks.md).
    worker_threads: int = Field(default=4, gt=0)
    # Health and reflection without a client certificate, for load balancers and probes
    # (HOST:PORT; loopback: plaintext, else server TLS). Off when unset (docs/operations.md).
    probe_listen: str | None = None
    # Prometheus /metrics over plain HTTP on its own HOST:PORT. Off when unset.
    metrics_listen: str | None = None
    # Gateway processes sharing ``listen`` (SO_REUSEPORT), supervised; >1 needs PostgreSQL.
    workers: int = Field(default=1, gt=0)
    # k for R16 comes from policy data; this is only the gateway side.
    tls: TLSSettings = TLSSettings()
    limits: LimitsSettings = LimitsSettings()
    policy: PolicySettings = PolicySettings()
    ledger: LedgerSettings = LedgerSettings()
    outbox: OutboxSettings = OutboxSettings()
    console: ConsoleSettings = ConsoleSettings()

    @field_validator("listen", "probe_listen", "metrics_listen")
    @classmethod
    def _listen_has_port(cls, v: str | None) -> str | None:
        return v if v is None else _host_port(v)

    @field_validator("data_dir")
    @classmethod
    def _data_dir_is_absolute(cls, v: Path) -> Path:
        return v.expanduser().absolute()

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def pki_dir(self) -> Path:
        """The development CA and its certificates (``serve`` and ``certs init``)."""
        return self.data_dir / "pki"

    @property
    def ledger_url(self) -> str:
        return self.ledger.url or f"sqlite:///{self.data_dir / 'gateway.db'}"

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        *,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Build settings from a TOML file, then environment, then explicit overrides.

        Raises:
            ConfigError: naming the first invalid field, e.g. ``ledger.max_batch``, or an
                unreadable settings file.
        """
        environ = os.environ if env is None else env
        for key in environ:
            name = key[len(ENV_PREFIX) :].lower().partition("__")[0]
            if key.upper().startswith(ENV_PREFIX) and name not in cls.model_fields:
                # pydantic-settings ignores unknown top-level variables; a typo must not be.
                raise ConfigError(f"invalid setting {name}: not a setting ({key})")
        sources: tuple[PydanticBaseSettingsSource, ...] = (
            InitSettingsSource(cls, init_kwargs=dict(overrides or {})),
            _Environment(cls, environ),
            InitSettingsSource(cls, init_kwargs=_read_file(path) if path is not None else {}),
        )
        try:
            # BaseSettings.__init__ takes prepared sources (mypy sees only the fields).
            return cls(_build_sources=(sources, {}))  # type: ignore[call-arg]
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "<root>"
            raise ConfigError(f"invalid setting {field}: {first['msg']}") from e


class _Environment(EnvSettingsSource):
    """``SHARE_GATEWAY_*`` variables from a given mapping (tests pass their own)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._environ.items()}


def _read_file(path: Path) -> dict[str, Any]:
    """The TOML settings file, its relative paths resolved against the file's folder."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read settings file {path}: {e}") from e
    _anchor_paths(raw, Settings, Path(path).absolute().parent)
    return raw


def _anchor_paths(raw: dict[str, Any], model: type[BaseModel], base: Path) -> None:
    for name, field in model.model_fields.items():
        value = raw.get(name)
        if isinstance(value, dict) and _is_model(field.annotation):
            _anchor_paths(value, field.annotation, base)  # type: ignore[arg-type]
        elif isinstance(value, str) and _is_path(field.annotation):
            raw[name] = str(base / Path(value).expanduser())


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_path(annotation: object) -> bool:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_is_path(a) for a in typing.get_args(annotation))
    return annotation is Path
