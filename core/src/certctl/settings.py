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

from certctl.domain.acme.addresses import parse_resolver
from certctl.domain.est.settings import EstSettings
from certctl.domain.scep.settings import ScepSettings
from certctl.lib.env import DURATION_UNITS, SettingsError, env_bool, env_duration, env_int
from certctl.lib.pkcs11_settings import Pkcs11Settings

__all__ = ["NamedApiKey", "Settings", "SettingsError", "parse_named_api_keys"]

_KEY_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MIN_ENCRYPTION_KEY_LENGTH = 32


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


def _fraction(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if not 0 <= value <= 0.5:
        raise SettingsError(f"{name}: must be between 0 and 0.5")
    return value


_SECONDS = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhd]?)$")
_LOOP_INTERVAL = re.compile(r"^CERTCTL_SCHEDULER_([A-Z0-9_]+)_INTERVAL$")


def _seconds(name: str, raw: str) -> float:
    """Positive seconds, fractions allowed, from ``0.5``, ``90s``, ``15m``, ``6h`` or ``1d``."""
    match = _SECONDS.match(raw.strip().lower())
    if match is None or float(match.group(1)) <= 0:
        raise SettingsError(
            f"{name}: expected a positive duration such as 30s, 15m or 6h, got {raw!r}"
        )
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


def _loop_intervals(env: Mapping[str, str]) -> dict[str, float]:
    """``CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL=5m`` → ``{"renewal-check": 300.0}``.

    Names are checked against the loops when the scheduler is built (an unknown loop is a typo).
    """
    intervals: dict[str, float] = {}
    for name, raw in env.items():
        match = _LOOP_INTERVAL.match(name)
        if match and raw.strip():
            intervals[match.group(1).lower().replace("_", "-")] = _seconds(name, raw)
    return intervals


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = env.get(name)
    if raw is None:
        return None
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def _thresholds(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    """Days before expiry, ``30,14,7,0`` by default; each 0 to 365."""
    raw = _list(env, name)
    if not raw:
        return (30, 14, 7, 0)
    try:
        values = sorted({int(v) for v in raw}, reverse=True)
    except ValueError:
        raise SettingsError(
            f"{name}: expected comma-separated whole days, got {env[name]!r}"
        ) from None
    if any(not 0 <= v <= 365 for v in values):
        raise SettingsError(f"{name}: each threshold must be between 0 and 365 days")
    return tuple(values)


# guard (rate limiting, break-glass): a rate where 0 means "inherit the global one".
def _rate(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
    if value < 0 or value != value or value == float("inf"):
        raise SettingsError(f"{name}: must be a finite number, at least 0")
    return value


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
    loop_intervals: dict[str, float] = msgspec.field(default_factory=dict)
    """Per-loop interval overrides in seconds (``CERTCTL_SCHEDULER_<LOOP>_INTERVAL``)."""
    disabled_loops: tuple[str, ...] = ()
    scheduler_jitter: float = 0.10
    """Each loop's wait is its interval ± this fraction, so replicas do not fire together."""
    scheduler_heartbeat_interval: float = 2.0
    """Seconds between heartbeats: replica row, leader check, loop status flush."""
    leader_lease_seconds: float = 15.0
    """SQLite only: the leader lease lasts this long unless renewed (PostgreSQL uses a lock)."""
    job_retention_seconds: int = 30 * 86400
    """Finished jobs older than this are deleted by the garbage-collection loop."""
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
    approval_bypass: bool = False
    """Approve every approval request at once as ``system-bypass`` (audited); for labs only."""
    job_awaiting_approval_timeout_seconds: int = 168 * 3600
    """Approval requests (and their jobs) still undecided after this long expire."""
    notification_max_attempts: int = 5
    """Delivery attempts per notification before it is dead-lettered."""
    notification_retry_base_seconds: float = 60.0
    """Delay before a notification's second attempt; doubles per attempt (jittered, ≤ 1 h)."""
    notification_lease_seconds: int = 300
    """How long a claimed notification stays reserved; a dead process's rows return after it."""
    notification_batch_size: int = 200
    """Notifications claimed per dispatch round."""
    notification_concurrency: int = 16
    """Notifications sent at once per process."""
    expiry_alert_thresholds_days: tuple[int, ...] = (30, 14, 7, 0)
    """Expiry-alert thresholds of certificates without a renewal policy."""
    renewal_jitter_percent: int = 10
    """Jitter of certificates without a renewal policy, as a percentage of the renewal window."""
    digest_enabled: bool = False
    """Whether the scheduled daily digest is sent (the API preview and manual send always work)."""
    digest_notifier_ids: tuple[str, ...] = ()
    """Notifier ids receiving the digest; empty means every enabled notifier."""
    ocsp_refresh_ms: int = 500
    auth_cache_ms: int = 1000
    """How stale (at most) another replica's view of revoked keys, grants and sessions may be;
    the replica that made the change enforces it at once."""
    demo_mode_residual_strict: bool = False
    """Refuse to start while the demo actor's admin grant survives outside demo mode."""
    """How often (at most) the responder re-reads an issuer's revocation count; revocations
    made by another process are answered within this bound, this process's at once."""
    # --- browser sessions (domain/sessions) ---
    session_samesite: str = "lax"
    """SameSite of the session and CSRF cookies: ``lax`` or ``strict`` (never ``none``)."""
    session_idle_timeout: int = 3600
    """Seconds without a request after which a session ends."""
    session_absolute_timeout: int = 8 * 3600
    """Seconds after sign-in after which a session ends, however active."""
    session_signing_key_rotation: int = 7 * 86400
    """Age at which the cookie signing key is replaced (by the session GC loop)."""
    session_signing_key_retention: int = 86400
    """How long a replaced signing key still verifies cookies it signed."""
    session_bind_ip: bool = False
    """Refuse a session cookie sent from another client address than at sign-in."""
    session_bind_user_agent: bool = False
    """Refuse a session cookie sent with another User-Agent than at sign-in."""
    # guard: rate limiting (issue 4) -------------------------------------------------------
    rate_limit_enabled: bool = True
    """The general request limit (token buckets per caller; see lib/ratelimit_http.py)."""
    rate_limit_rps: float = 50.0
    """Budget of unauthenticated callers, per source address: tokens per second..."""
    rate_limit_burst: int = 100
    """...and at most this many at once."""
    rate_limit_per_user_rps: float = 0.0
    """Budget of each authenticated actor (API key, user); 0 means ``rate_limit_rps``."""
    rate_limit_per_user_burst: int = 0
    """0 means ``rate_limit_burst``."""
    rate_limit_bucket_ttl_seconds: int = 3600
    """Buckets idle this long are forgotten (they are full again by then)."""
    rate_limit_lease: int = 10
    """PostgreSQL: most tokens a replica takes from a shared bucket at once (1 = exact)."""
    trusted_proxies: tuple[str, ...] = ()
    """CIDRs whose ``X-Forwarded-For`` is believed; other peers are the client themselves."""
    # guard: break-glass (issue 4) ----------------------------------------------------------
    breakglass_enabled: bool = False
    """Local password sign-in for recovery when SSO is down; off means every route is 404."""
    breakglass_lockout_threshold: int = 5
    """Failed sign-ins (within the reset interval) after which an account is locked..."""
    breakglass_lockout_duration_seconds: int = 30
    """...for this long."""
    breakglass_lockout_reset_seconds: int = 3600
    """Failures older than this no longer count towards a lockout."""
    breakglass_login_per_ip_min: int = 5
    """Sign-in attempts per source address per minute."""
    breakglass_min_password_length: int = 16
    breakglass_argon2_memory_kib: int = 65536
    """Argon2id cost (RFC 9106's second recommendation); tests lower it, operators do not."""
    breakglass_argon2_time_cost: int = 3
    breakglass_argon2_parallelism: int = 4
    breakglass_hash_concurrency: int = 2
    """Argon2 computations at once per process (each takes the memory above and a core)."""
    # SSO (oidc)
    oidc_prelogin_bind_user_agent: bool = True
    """The callback must come from the User-Agent that started the login."""
    oidc_prelogin_bind_ip: bool = True
    """The callback must come from the client address that started the login."""
    oidc_bcl_max_age_seconds: int = 60
    """How old (by ``iat``) a back-channel logout token may be."""
    bootstrap_admin_groups: tuple[str, ...] = ()
    """IdP groups whose first member to sign in becomes admin while no admin exists."""
    bootstrap_oidc_provider_id: str = ""
    """When set, only this SSO provider's users (by id or name) can be the first admin by group."""
    oidc_provider_file: str = ""
    """A JSON file declaring an SSO provider, created at start unless one of its name exists."""
    # --- ACME server (domain/acme) ---
    acme_server_enabled: bool = True
    """Serve ``/acme/...``; a profile also needs an ``issuer_id`` before its directory answers."""
    acme_default_profile_id: str = ""
    """The profile the shorthand ``/acme/directory`` layout serves."""
    acme_default_auth_mode: Literal["challenge", "trust_authenticated"] = "challenge"
    acme_eab_required: bool = False
    acme_tos_url: str = ""
    acme_website: str = ""
    acme_caa_identities: tuple[str, ...] = ()
    acme_nonce_ttl_seconds: int = 300
    acme_order_ttl_seconds: int = 86400
    acme_authz_ttl_seconds: int = 86400
    acme_ari_enabled: bool = True
    acme_ari_poll_interval_seconds: int = 6 * 3600
    """``Retry-After`` of renewal-info answers."""
    acme_dns_resolver: str = ""
    """``host[:port]`` of the DNS server validators ask (A/AAAA/TXT); empty: the system's."""
    acme_http01_port: int = 80
    """RFC 8555 fixes 80; tests and lab set-ups point it elsewhere."""
    acme_tlsalpn01_port: int = 443
    """RFC 8737 fixes 443."""
    acme_validation_allow_loopback: bool = False
    """Let validators connect to loopback addresses (tests; never in production)."""
    acme_validation_timeout_seconds: float = 10.0
    acme_http01_concurrency: int = 10
    acme_dns01_concurrency: int = 10
    acme_tlsalpn01_concurrency: int = 10
    """Validations in flight per challenge type and process (the Go certctl's three knobs)."""
    acme_gc_interval_seconds: int = 60
    """How often the ``acme-gc`` loop purges nonces and expires orders and authorizations."""
    acme_orders_per_hour_per_account: int = 300
    acme_orders_per_hour_per_ip: int = 1000
    acme_pending_orders_per_account: int = 100
    acme_failed_validations_per_hour_per_account: int = 60
    est: EstSettings = msgspec.field(default_factory=EstSettings)
    """The EST server (domain/est): ``CERTCTL_EST_*``."""
    scep: ScepSettings = ScepSettings()
    """The SCEP server (domain/scep): ``CERTCTL_SCEP_*``."""
    pkcs11: Pkcs11Settings | None = None
    """The PKCS#11 token CA keys may live in (``CERTCTL_PKCS11_*``, lib/pkcs11_settings.py)."""

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
            "server_port": env_int(e, "CERTCTL_SERVER_PORT", 8443, minimum=1),
            "data_dir": e.get("CERTCTL_DATA_DIR") or "./data",
            "database_url": normalise_database_url(e.get("CERTCTL_DATABASE_URL", "")),
            "tls_cert_path": e.get("CERTCTL_SERVER_TLS_CERT_PATH") or None,
            "tls_key_path": e.get("CERTCTL_SERVER_TLS_KEY_PATH") or None,
            "public_url": e.get("CERTCTL_PUBLIC_URL", ""),
            "max_body_size": env_int(e, "CERTCTL_MAX_BODY_SIZE", 1_048_576, minimum=1024),
            "auth_type": auth_type,
            "api_keys_named": parse_named_api_keys(e.get("CERTCTL_API_KEYS_NAMED", "")),
            "bootstrap_token": e.get("CERTCTL_BOOTSTRAP_TOKEN", ""),
            "config_encryption_key": e.get("CERTCTL_CONFIG_ENCRYPTION_KEY", ""),
            "demo": env_bool(e, "CERTCTL_DEMO_SEED", False),
            "load_plugins": _list(e, "CERTCTL_LOAD_PLUGINS"),
            "disable_plugins": _list(e, "CERTCTL_DISABLE_PLUGINS") or (),
            "trace_plugins": env_bool(e, "CERTCTL_TRACE_PLUGINS", False),
            "log_level": (e.get("CERTCTL_LOG_LEVEL") or "info").lower(),
            "worker_enabled": env_bool(e, "CERTCTL_WORKER_ENABLED", True),
            "worker_concurrency": env_int(e, "CERTCTL_WORKER_CONCURRENCY", 8, minimum=1),
            "worker_batch_size": env_int(e, "CERTCTL_WORKER_BATCH_SIZE", 256, minimum=1),
            "job_max_attempts": env_int(e, "CERTCTL_JOB_MAX_ATTEMPTS", 5, minimum=1),
            "job_lease_seconds": env_duration(e, "CERTCTL_JOB_LEASE_TIMEOUT", 300),
            "loop_intervals": _loop_intervals(e),
            "disabled_loops": _list(e, "CERTCTL_SCHEDULER_DISABLED_LOOPS") or (),
            "scheduler_jitter": _fraction(e, "CERTCTL_SCHEDULER_JITTER", 0.10),
            "scheduler_heartbeat_interval": _seconds(
                "CERTCTL_SCHEDULER_HEARTBEAT", e.get("CERTCTL_SCHEDULER_HEARTBEAT") or "2"
            ),
            "leader_lease_seconds": _seconds(
                "CERTCTL_SCHEDULER_LEADER_LEASE", e.get("CERTCTL_SCHEDULER_LEADER_LEASE") or "15"
            ),
            "job_retention_seconds": env_duration(e, "CERTCTL_JOB_RETENTION", 30 * 86400),
            "database_pool_size": env_int(e, "CERTCTL_DATABASE_MAX_CONNS", 10, minimum=1),
            "crl_validity_hours": env_int(e, "CERTCTL_CRL_VALIDITY_HOURS", 24, minimum=1),
            "ocsp_responder_validity_seconds": env_duration(
                e, "CERTCTL_OCSP_RESPONDER_VALIDITY", 30 * 86400
            ),
            "ocsp_rotation_grace_seconds": env_duration(
                e, "CERTCTL_OCSP_ROTATION_GRACE", 7 * 86400
            ),
            "ocsp_rate_limit_per_ip_min": env_int(e, "CERTCTL_OCSP_RATE_LIMIT_PER_IP_MIN", 1000),
            "approval_bypass": env_bool(e, "CERTCTL_APPROVAL_BYPASS", False),
            "job_awaiting_approval_timeout_seconds": env_duration(
                e, "CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT", 168 * 3600
            ),
            "notification_max_attempts": env_int(
                e, "CERTCTL_NOTIFICATION_MAX_ATTEMPTS", 5, minimum=1
            ),
            "notification_retry_base_seconds": _float(
                e, "CERTCTL_NOTIFICATION_RETRY_BASE_SECONDS", 60.0
            ),
            "notification_lease_seconds": env_duration(e, "CERTCTL_NOTIFICATION_LEASE", 300),
            "notification_batch_size": env_int(
                e, "CERTCTL_NOTIFICATION_BATCH_SIZE", 200, minimum=1
            ),
            "notification_concurrency": env_int(
                e, "CERTCTL_NOTIFICATION_CONCURRENCY", 16, minimum=1
            ),
            "expiry_alert_thresholds_days": _thresholds(e, "CERTCTL_EXPIRY_ALERT_THRESHOLDS"),
            "renewal_jitter_percent": env_int(e, "CERTCTL_RENEWAL_JITTER_PERCENT", 10),
            "digest_enabled": env_bool(e, "CERTCTL_DIGEST_ENABLED", False),
            "digest_notifier_ids": _list(e, "CERTCTL_DIGEST_NOTIFIER_IDS") or (),
            "ocsp_refresh_ms": env_int(e, "CERTCTL_OCSP_REFRESH_MS", 500),
            "auth_cache_ms": env_int(e, "CERTCTL_AUTH_CACHE_MS", 1000),
            "demo_mode_residual_strict": env_bool(e, "CERTCTL_DEMO_MODE_RESIDUAL_STRICT", False),
            # --- browser sessions (domain/sessions) ---
            "session_samesite": (e.get("CERTCTL_SESSION_SAMESITE") or "lax").strip().lower(),
            "session_idle_timeout": env_duration(e, "CERTCTL_SESSION_IDLE_TIMEOUT", 3600),
            "session_absolute_timeout": env_duration(
                e, "CERTCTL_SESSION_ABSOLUTE_TIMEOUT", 8 * 3600
            ),
            "session_signing_key_rotation": env_duration(
                e, "CERTCTL_SESSION_SIGNING_KEY_ROTATION", 7 * 86400
            ),
            "session_signing_key_retention": env_duration(
                e, "CERTCTL_SESSION_SIGNING_KEY_RETENTION", 86400
            ),
            "session_bind_ip": env_bool(e, "CERTCTL_SESSION_BIND_IP", False),
            "session_bind_user_agent": env_bool(e, "CERTCTL_SESSION_BIND_USER_AGENT", False),
            # guard: rate limiting and break-glass (issue 4)
            "rate_limit_enabled": env_bool(e, "CERTCTL_RATE_LIMIT_ENABLED", True),
            "rate_limit_rps": _rate(e, "CERTCTL_RATE_LIMIT_RPS", 50.0),
            "rate_limit_burst": env_int(e, "CERTCTL_RATE_LIMIT_BURST", 100, minimum=1),
            "rate_limit_per_user_rps": _rate(e, "CERTCTL_RATE_LIMIT_PER_USER_RPS", 0.0),
            "rate_limit_per_user_burst": env_int(e, "CERTCTL_RATE_LIMIT_PER_USER_BURST", 0),
            "rate_limit_bucket_ttl_seconds": env_duration(e, "CERTCTL_RATE_LIMIT_BUCKET_TTL", 3600),
            "rate_limit_lease": env_int(e, "CERTCTL_RATE_LIMIT_LEASE", 10, minimum=1),
            "trusted_proxies": _list(e, "CERTCTL_TRUSTED_PROXIES") or (),
            "breakglass_enabled": env_bool(e, "CERTCTL_BREAKGLASS_ENABLED", False),
            "breakglass_lockout_threshold": env_int(
                e, "CERTCTL_BREAKGLASS_LOCKOUT_THRESHOLD", 5, minimum=1
            ),
            "breakglass_lockout_duration_seconds": env_duration(
                e, "CERTCTL_BREAKGLASS_LOCKOUT_DURATION", 30
            ),
            "breakglass_lockout_reset_seconds": env_duration(
                e, "CERTCTL_BREAKGLASS_LOCKOUT_RESET_INTERVAL", 3600
            ),
            "breakglass_login_per_ip_min": env_int(
                e, "CERTCTL_BREAKGLASS_LOGIN_RATE_LIMIT_PER_MIN", 5, minimum=1
            ),
            "breakglass_min_password_length": env_int(
                e, "CERTCTL_BREAKGLASS_MIN_PASSWORD_LENGTH", 16, minimum=12
            ),
            "breakglass_hash_concurrency": env_int(
                e, "CERTCTL_BREAKGLASS_HASH_CONCURRENCY", 2, minimum=1
            ),
            # SSO (oidc)
            "oidc_prelogin_bind_user_agent": env_bool(
                e, "CERTCTL_OIDC_PRELOGIN_BIND_USER_AGENT", True
            ),
            "oidc_prelogin_bind_ip": env_bool(e, "CERTCTL_OIDC_PRELOGIN_BIND_IP", True),
            "oidc_bcl_max_age_seconds": env_int(
                e, "CERTCTL_OIDC_BCL_MAX_AGE_SECONDS", 60, minimum=1
            ),
            "bootstrap_admin_groups": _list(e, "CERTCTL_BOOTSTRAP_ADMIN_GROUPS") or (),
            "bootstrap_oidc_provider_id": e.get("CERTCTL_BOOTSTRAP_OIDC_PROVIDER_ID", "").strip(),
            "oidc_provider_file": e.get("CERTCTL_OIDC_PROVIDER_FILE", "").strip(),
            # --- ACME server (domain/acme) ---
            "acme_server_enabled": env_bool(e, "CERTCTL_ACME_SERVER_ENABLED", True),
            "acme_default_profile_id": e.get("CERTCTL_ACME_SERVER_DEFAULT_PROFILE_ID", "").strip(),
            "acme_default_auth_mode": (
                e.get("CERTCTL_ACME_SERVER_DEFAULT_AUTH_MODE") or "challenge"
            ).strip(),
            "acme_eab_required": env_bool(e, "CERTCTL_ACME_SERVER_EAB_REQUIRED", False),
            "acme_tos_url": e.get("CERTCTL_ACME_SERVER_TOS_URL", "").strip(),
            "acme_website": e.get("CERTCTL_ACME_SERVER_WEBSITE", "").strip(),
            "acme_caa_identities": _list(e, "CERTCTL_ACME_SERVER_CAA_IDENTITIES") or (),
            "acme_nonce_ttl_seconds": env_duration(e, "CERTCTL_ACME_SERVER_NONCE_TTL", 300),
            "acme_order_ttl_seconds": env_duration(e, "CERTCTL_ACME_SERVER_ORDER_TTL", 86400),
            "acme_authz_ttl_seconds": env_duration(e, "CERTCTL_ACME_SERVER_AUTHZ_TTL", 86400),
            "acme_ari_enabled": env_bool(e, "CERTCTL_ACME_SERVER_ARI_ENABLED", True),
            "acme_ari_poll_interval_seconds": env_duration(
                e, "CERTCTL_ACME_SERVER_ARI_POLL_INTERVAL", 6 * 3600
            ),
            "acme_dns_resolver": e.get("CERTCTL_ACME_SERVER_DNS01_RESOLVER", "").strip(),
            "acme_http01_port": env_int(e, "CERTCTL_ACME_SERVER_HTTP01_PORT", 80, minimum=1),
            "acme_tlsalpn01_port": env_int(e, "CERTCTL_ACME_SERVER_TLSALPN01_PORT", 443, minimum=1),
            "acme_validation_allow_loopback": env_bool(
                e, "CERTCTL_ACME_SERVER_VALIDATION_ALLOW_LOOPBACK", False
            ),
            "acme_validation_timeout_seconds": _float(
                e, "CERTCTL_ACME_SERVER_VALIDATION_TIMEOUT", 10.0
            ),
            "acme_http01_concurrency": env_int(
                e, "CERTCTL_ACME_SERVER_HTTP01_CONCURRENCY", 10, minimum=1
            ),
            "acme_dns01_concurrency": env_int(
                e, "CERTCTL_ACME_SERVER_DNS01_CONCURRENCY", 10, minimum=1
            ),
            "acme_tlsalpn01_concurrency": env_int(
                e, "CERTCTL_ACME_SERVER_TLSALPN01_CONCURRENCY", 10, minimum=1
            ),
            "acme_gc_interval_seconds": env_duration(e, "CERTCTL_ACME_SERVER_GC_INTERVAL", 60),
            "acme_orders_per_hour_per_account": env_int(
                e, "CERTCTL_ACME_SERVER_ORDERS_PER_HOUR_PER_ACCOUNT", 300, minimum=1
            ),
            "acme_orders_per_hour_per_ip": env_int(
                e, "CERTCTL_ACME_SERVER_ORDERS_PER_HOUR_PER_IP", 1000, minimum=1
            ),
            "acme_pending_orders_per_account": env_int(
                e, "CERTCTL_ACME_SERVER_PENDING_ORDERS_PER_ACCOUNT", 100, minimum=1
            ),
            "acme_failed_validations_per_hour_per_account": env_int(
                e, "CERTCTL_ACME_SERVER_FAILED_VALIDATIONS_PER_HOUR", 60, minimum=1
            ),
            "est": EstSettings.from_env(e),
            "scep": ScepSettings.from_env(e),
            "pkcs11": Pkcs11Settings.from_env(e),
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
        if self.leader_lease_seconds < 2 * self.scheduler_heartbeat_interval:
            raise SettingsError(
                "CERTCTL_SCHEDULER_LEADER_LEASE must be at least twice CERTCTL_SCHEDULER_HEARTBEAT"
            )
        if not 0 <= self.renewal_jitter_percent <= 50:
            raise SettingsError("CERTCTL_RENEWAL_JITTER_PERCENT: must be between 0 and 50")
        if self.auth_type == "none" and not self.demo:
            raise SettingsError("CERTCTL_AUTH_TYPE=none is only allowed in demo mode")
        # --- browser sessions (domain/sessions) ---
        if self.session_samesite not in ("lax", "strict"):
            # "none" would send the session cookie on cross-site requests.
            raise SettingsError(
                f"CERTCTL_SESSION_SAMESITE: expected lax or strict, got {self.session_samesite!r}"
            )
        if self.session_idle_timeout > self.session_absolute_timeout:
            raise SettingsError(
                "CERTCTL_SESSION_IDLE_TIMEOUT must not exceed CERTCTL_SESSION_ABSOLUTE_TIMEOUT"
            )
        if self.session_signing_key_retention < self.session_absolute_timeout:
            # A retired key must outlive every cookie it signed, or rotation ends live sessions.
            raise SettingsError(
                "CERTCTL_SESSION_SIGNING_KEY_RETENTION must be at least "
                "CERTCTL_SESSION_ABSOLUTE_TIMEOUT"
            )
        # guard: rate limiting and break-glass (issue 4)
        if self.rate_limit_enabled and self.rate_limit_rps <= 0:
            raise SettingsError("CERTCTL_RATE_LIMIT_RPS: must be positive while limits are on")
        try:
            from certctl.lib.ratelimit_http import parse_networks

            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise SettingsError(f"CERTCTL_TRUSTED_PROXIES: {exc}") from None
        if self.breakglass_lockout_reset_seconds < self.breakglass_lockout_duration_seconds:
            raise SettingsError(
                "CERTCTL_BREAKGLASS_LOCKOUT_RESET_INTERVAL must not be shorter than "
                "CERTCTL_BREAKGLASS_LOCKOUT_DURATION"
            )
        # SSO (oidc)
        if not 1 <= self.oidc_bcl_max_age_seconds <= 600:
            raise SettingsError("CERTCTL_OIDC_BCL_MAX_AGE_SECONDS: must be between 1 and 600")
        if self.acme_default_auth_mode not in ("challenge", "trust_authenticated"):
            raise SettingsError(
                "CERTCTL_ACME_SERVER_DEFAULT_AUTH_MODE: expected challenge or trust_authenticated"
            )
        if self.acme_dns_resolver:
            try:
                parse_resolver(self.acme_dns_resolver)
            except ValueError:
                raise SettingsError(
                    "CERTCTL_ACME_SERVER_DNS01_RESOLVER: expected an IP address with an optional "
                    "port, e.g. 10.0.0.53 or [fd00::53]:53"
                ) from None
        if self.acme_nonce_ttl_seconds < 10:
            raise SettingsError("CERTCTL_ACME_SERVER_NONCE_TTL: must be at least 10 seconds")
        if self.bootstrap_oidc_provider_id and not self.bootstrap_admin_groups:
            raise SettingsError(
                "CERTCTL_BOOTSTRAP_OIDC_PROVIDER_ID needs CERTCTL_BOOTSTRAP_ADMIN_GROUPS"
            )
