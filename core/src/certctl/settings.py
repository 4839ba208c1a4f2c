"""Server settings, read from ``CERTCTL_*`` environment variables by :meth:`Settings.from_env`.

There is no module-level instance: the CLI builds one and hands it to ``create_app``; tests build
their own. Invalid values raise :class:`SettingsError` with the variable's name, so a
misconfigured server refuses to start instead of running half-configured.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

__all__ = ["NamedApiKey", "Settings", "SettingsError", "parse_named_api_keys"]

_KEY_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MIN_ENCRYPTION_KEY_LENGTH = 32


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


class NamedApiKey(msgspec.Struct, frozen=True):
    """One ``name:key[:admin]`` entry of ``CERTCTL_API_KEYS_NAMED``."""

    name: str
    key: str
    admin: bool

    def __repr__(self) -> str:
        return f"NamedApiKey(name={self.name!r}, admin={self.admin})"


def parse_named_api_keys(raw: str) -> tuple[NamedApiKey, ...]:
    """Parse ``name:key[:admin],…``.

    A name may repeat with a different key (the rotation window: both keys work while clients
    move over); an identical name/key pair, or a repeated name with a different admin flag, is
    an error because it is always a typo or a privilege change in disguise.
    """
    keys: list[NamedApiKey] = []
    for index, item in enumerate(part.strip() for part in raw.split(",")):
        if not item:
            continue
        fields = item.split(":")
        where = f"CERTCTL_API_KEYS_NAMED entry {index + 1}"
        if len(fields) not in (2, 3):
            raise SettingsError(f"{where}: expected name:key or name:key:admin")
        name, key = fields[0], fields[1]
        if not _KEY_NAME.match(name):
            raise SettingsError(f"{where}: name must match [A-Za-z0-9_-]{{1,64}}")
        if not key:
            raise SettingsError(f"{where} ({name}): empty key")
        if any(c.isspace() for c in key):
            # A bearer token cannot carry whitespace: such a key could never authenticate.
            raise SettingsError(f"{where} ({name}): the key contains whitespace")
        if len(fields) == 3 and fields[2] != "admin":
            raise SettingsError(f"{where} ({name}): third field must be 'admin'")
        entry = NamedApiKey(name=name, key=key, admin=len(fields) == 3)
        for other in keys:
            if other.name != name:
                continue
            if other.key == key:
                raise SettingsError(f"{where} ({name}): the same name and key are listed twice")
            if other.admin != entry.admin:
                raise SettingsError(
                    f"{where} ({name}): a rotated key must keep the same admin flag"
                )
        keys.append(entry)
    return tuple(keys)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: expected true or false, got {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name}: must be positive")
    return value


_DURATION = re.compile(r"^([0-9]+)([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(env: Mapping[str, str], name: str, default: int) -> int:
    """Seconds from ``90``, ``90s``, ``15m``, ``720h`` or ``30d``; at least one second."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    match = _DURATION.match(raw.strip().lower())
    if match is None:
        raise SettingsError(f"{name}: expected a duration such as 30d, 720h or 3600, got {raw!r}")
    value = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if value < 1:
        raise SettingsError(f"{name}: must be at least one second")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = env.get(name)
    if raw is None:
        return None
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def normalise_database_url(url: str) -> str:
    """Accept the usual spellings and pick the async driver SQLAlchemy needs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the server reads from its environment."""

    server_host: str = "127.0.0.1"
    server_port: int = 8443
    data_dir: str = "./data"
    database_url: str = ""
    """Empty means a SQLite file in ``data_dir``."""
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    public_url: str = ""
    """Base URL clients use to reach this server; empty means https://host:port."""
    max_body_size: int = 1_048_576
    auth_type: Literal["api-key", "none"] = "api-key"
    api_keys_named: tuple[NamedApiKey, ...] = ()
    bootstrap_token: str = ""
    config_encryption_key: str = ""
    demo: bool = False
    """Demo mode: seed demo data and accept a generated encryption key kept in ``data_dir``."""
    load_plugins: tuple[str, ...] | None = None
    disable_plugins: tuple[str, ...] = ()
    trace_plugins: bool = False
    log_level: str = "info"
    worker_enabled: bool = True
    worker_concurrency: int = 8
    """Deployments (and other external work) run at once per process."""
    worker_batch_size: int = 256
    """Jobs claimed per round; issuances of a round are signed and recorded together."""
    worker_poll_interval: float = 0.5
    job_max_attempts: int = 5
    job_lease_seconds: int = 300
    job_retry_base_seconds: float = 5.0
    renewal_check_interval: float = 60.0
    default_validity_days: int = 90
    crl_validity_hours: int = 24
    """How long a CRL is valid (nextUpdate - thisUpdate); it is re-signed at half of that."""
    database_pool_size: int = 10
    ocsp_responder_validity_seconds: int = 30 * 86400
    """Lifetime requested for a delegated OCSP responder certificate."""
    ocsp_rotation_grace_seconds: int = 7 * 86400
    """A responder certificate this close to expiry is replaced on its next use."""
    ocsp_rate_limit_per_ip_min: int = 1000
    """OCSP requests per client address per minute; 0 disables the limit."""
    ocsp_refresh_ms: int = 500
    """How often (at most) the responder re-reads an issuer's revocation count; revocations
    made by another process are answered within this bound, this process's at once."""

    def __repr__(self) -> str:
        # The bootstrap token, encryption key and API keys never reach a log line.
        return (
            f"Settings(server={self.server_host}:{self.server_port}, data_dir={self.data_dir!r}, "
            f"database={self.effective_database_url.split('@')[-1]!r}, auth={self.auth_type})"
        )

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to ``<data_dir>/certctl.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{Path(self.data_dir).resolve() / 'certctl.db'}"

    @property
    def effective_public_url(self) -> str:
        """The base URL used in links that leave the server."""
        return (self.public_url or f"https://{self.server_host}:{self.server_port}").rstrip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``CERTCTL_*`` variables; ``overrides`` (CLI flags) win over the environment."""
        e = os.environ if env is None else env
        auth_type = e.get("CERTCTL_AUTH_TYPE", "api-key") or "api-key"
        if auth_type not in ("api-key", "none"):
            raise SettingsError(
                f"CERTCTL_AUTH_TYPE: {auth_type!r} is not supported (use api-key or none)"
            )
        values: dict[str, object] = {
            "server_host": e.get("CERTCTL_SERVER_HOST") or "127.0.0.1",
            "server_port": _int(e, "CERTCTL_SERVER_PORT", 8443, minimum=1),
            "data_dir": e.get("CERTCTL_DATA_DIR") or "./data",
            "database_url": normalise_database_url(e.get("CERTCTL_DATABASE_URL", "")),
            "tls_cert_path": e.get("CERTCTL_SERVER_TLS_CERT_PATH") or None,
            "tls_key_path": e.get("CERTCTL_SERVER_TLS_KEY_PATH") or None,
            "public_url": e.get("CERTCTL_PUBLIC_URL", ""),
            "max_body_size": _int(e, "CERTCTL_MAX_BODY_SIZE", 1_048_576, minimum=1024),
            "auth_type": auth_type,
            "api_keys_named": parse_named_api_keys(e.get("CERTCTL_API_KEYS_NAMED", "")),
            "bootstrap_token": e.get("CERTCTL_BOOTSTRAP_TOKEN", ""),
            "config_encryption_key": e.get("CERTCTL_CONFIG_ENCRYPTION_KEY", ""),
            "demo": _bool(e, "CERTCTL_DEMO_SEED", False),
            "load_plugins": _list(e, "CERTCTL_LOAD_PLUGINS"),
            "disable_plugins": _list(e, "CERTCTL_DISABLE_PLUGINS") or (),
            "trace_plugins": _bool(e, "CERTCTL_TRACE_PLUGINS", False),
            "log_level": (e.get("CERTCTL_LOG_LEVEL") or "info").lower(),
            "worker_enabled": _bool(e, "CERTCTL_WORKER_ENABLED", True),
            "worker_concurrency": _int(e, "CERTCTL_WORKER_CONCURRENCY", 8, minimum=1),
            "worker_batch_size": _int(e, "CERTCTL_WORKER_BATCH_SIZE", 256, minimum=1),
            "job_max_attempts": _int(e, "CERTCTL_JOB_MAX_ATTEMPTS", 5, minimum=1),
            "renewal_check_interval": _float(e, "CERTCTL_RENEWAL_CHECK_INTERVAL", 60.0),
            "database_pool_size": _int(e, "CERTCTL_DATABASE_MAX_CONNS", 10, minimum=1),
            "crl_validity_hours": _int(e, "CERTCTL_CRL_VALIDITY_HOURS", 24, minimum=1),
            "ocsp_responder_validity_seconds": _duration(
                e, "CERTCTL_OCSP_RESPONDER_VALIDITY", 30 * 86400
            ),
            "ocsp_rotation_grace_seconds": _duration(e, "CERTCTL_OCSP_ROTATION_GRACE", 7 * 86400),
            "ocsp_rate_limit_per_ip_min": _int(e, "CERTCTL_OCSP_RATE_LIMIT_PER_IP_MIN", 1000),
            "ocsp_refresh_ms": _int(e, "CERTCTL_OCSP_REFRESH_MS", 500),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if isinstance(values.get("database_url"), str):
            values["database_url"] = normalise_database_url(str(values["database_url"]))
        settings = msgspec.convert(values, cls)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse combinations that would run insecurely or not at all."""
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise SettingsError("CERTCTL_LOG_LEVEL: expected debug, info, warning or error")
        key = self.config_encryption_key
        if key and len(key) < MIN_ENCRYPTION_KEY_LENGTH:
            raise SettingsError(
                f"CERTCTL_CONFIG_ENCRYPTION_KEY: must be at least "
                f"{MIN_ENCRYPTION_KEY_LENGTH} characters"
            )
        if not key and not self.demo:
            raise SettingsError(
                "CERTCTL_CONFIG_ENCRYPTION_KEY is required outside demo mode "
                f"(at least {MIN_ENCRYPTION_KEY_LENGTH} random characters); "
                "it encrypts connector secrets and private keys at rest"
            )
        if bool(self.tls_cert_path) != bool(self.tls_key_path):
            raise SettingsError(
                "CERTCTL_SERVER_TLS_CERT_PATH and CERTCTL_SERVER_TLS_KEY_PATH must be set together"
            )
        if self.ocsp_rotation_grace_seconds >= self.ocsp_responder_validity_seconds:
            raise SettingsError(
                "CERTCTL_OCSP_ROTATION_GRACE must be shorter than CERTCTL_OCSP_RESPONDER_VALIDITY"
            )
        if self.auth_type == "none" and not self.demo:
            raise SettingsError("CERTCTL_AUTH_TYPE=none is only allowed in demo mode")
