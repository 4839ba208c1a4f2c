"""``CERTCTL_EST_*``: which profiles EST serves, under which URL labels, and how clients prove who
they are.

The family matches the reference: ``CERTCTL_EST_ENABLED``, a legacy un-labelled profile
(``CERTCTL_EST_PROFILE_ID`` and the same knobs as ``CERTCTL_EST_<KNOB>``, served at
``/.well-known/est/…``), and labelled ones (``CERTCTL_EST_PROFILES=a,b`` with
``CERTCTL_EST_PROFILE_<NAME>_<KNOB>``, served at ``/.well-known/est/<label>/…`` and, with mTLS,
``/.well-known/est-mtls/<label>/…``). ``<NAME>`` is the label upper-cased with ``-`` → ``_``.

Every inconsistent combination is a :class:`certctl.settings.SettingsError` naming the variable,
so a server never runs an enrollment door that is more open than the operator wrote. The Basic
enrollment password is turned into an Argon2id hash here and the plaintext is not kept.

(``certctl.settings`` imports this module, so the error type is imported where it is raised.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import msgspec
from argon2 import PasswordHasher, Type

from certctl.lib.env import SettingsError, env_bool, env_int

__all__ = [
    "AUTH_MODES",
    "LABEL",
    "EstProfileSettings",
    "EstSettings",
    "load_trust_bundle",
    "password_hasher",
]

LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
"""A URL label: lower-case letters, digits and inner hyphens (the reference's rule)."""
RESERVED_LABELS = frozenset({"est", "cacerts", "simpleenroll", "simplereenroll", "csrattrs",
                             "serverkeygen", "fullcmc"})  # fmt: skip
"""``est`` as the reference reserves it, and the operation names, which would read as paths."""
AUTH_MODES = frozenset({"mtls", "basic"})

# Argon2id at OWASP's second recommendation (19 MiB, 2 passes): the password guards a machine
# enrollment, is checked on every Basic request, and must not cost 64 MiB of memory each time.
_ARGON2_MEMORY_KIB = 19456
_ARGON2_TIME_COST = 2
MIN_PASSWORD_LENGTH = 8


def password_hasher() -> PasswordHasher:
    """The Argon2id parameters of enrollment passwords (hashing at start, verifying later)."""
    return PasswordHasher(
        time_cost=_ARGON2_TIME_COST,
        memory_cost=_ARGON2_MEMORY_KIB,
        parallelism=1,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


class EstProfileSettings(msgspec.Struct, frozen=True, kw_only=True):
    """One EST door: a URL label bound to a certificate profile, and its authentication."""

    label: str
    """The URL label; empty for the legacy profile at ``/.well-known/est/…``."""
    profile_id: str
    """The certificate profile (id or name): its issuer signs, its policy decides."""
    auth_modes: frozenset[str] = frozenset()
    """``mtls`` and/or ``basic``; empty means anonymous enrollment (bootstrap only)."""
    username: str = ""
    """The Basic user name required; empty accepts any user name (the reference's behaviour)."""
    password_hash: str = ""
    """Argon2id PHC string of the Basic enrollment password; never the password itself."""
    mtls_enabled: bool = False
    """Serve the ``/.well-known/est-mtls/<label>/…`` twin."""
    trust_bundle_path: str = ""
    """PEM bundle of the CAs whose client certificates this profile accepts."""
    channel_binding_required: bool = False
    """RFC 9266: enrollments on the mTLS route must carry this connection's tls-exporter."""
    rate_limit_per_principal_24h: int = 0
    """New enrollments per principal per 24 hours; 0 switches the limit off."""
    serverkeygen_enabled: bool = False

    def __repr__(self) -> str:
        # The hash is not the password, but it is what an offline guesser needs.
        return (
            f"EstProfileSettings(label={self.label!r}, profile_id={self.profile_id!r}, "
            f"auth_modes={sorted(self.auth_modes)}, mtls={self.mtls_enabled})"
        )

    @property
    def env_prefix(self) -> str:
        """The variables' prefix: ``CERTCTL_EST_`` or ``CERTCTL_EST_PROFILE_<NAME>_``."""
        if not self.label:
            return "CERTCTL_EST_"
        return f"CERTCTL_EST_PROFILE_{self.label.upper().replace('-', '_')}_"

    @property
    def anonymous(self) -> bool:
        """No credential is asked for on the plain route."""
        return not self.auth_modes


class EstSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The EST server's settings (``Settings.est``)."""

    enabled: bool = False
    profiles: tuple[EstProfileSettings, ...] = ()
    issuance_wait_seconds: float = 10.0
    """How long an enrollment waits for the job engine before answering 202 + Retry-After."""
    retry_after_seconds: int = 10
    """``Retry-After`` of a 202 while the issuer works (approval waits answer 10 times this)."""
    max_request_bytes: int = 65536
    """Largest request body EST accepts (a CSR is a few KiB)."""

    def __repr__(self) -> str:
        return f"EstSettings(enabled={self.enabled}, profiles={list(self.profiles)!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EstSettings:
        """Read the ``CERTCTL_EST_*`` family; SettingsError on anything inconsistent."""
        return _parse(env)

    def profile(self, label: str) -> EstProfileSettings | None:
        """The profile served under ``label`` ("" for the legacy one), if any."""
        if not self.enabled:
            return None
        return next((p for p in self.profiles if p.label == label), None)

    @property
    def mtls_trust_bundles(self) -> tuple[Path, ...]:
        """The client-CA bundles of the mTLS-enabled profiles (for the listener)."""
        if not self.enabled:
            return ()
        return tuple(Path(p.trust_bundle_path) for p in self.profiles if p.mtls_enabled)


def _fail(message: str) -> NoReturn:
    raise SettingsError(message)


def _seconds(env: Mapping[str, str], name: str, default: float, *, maximum: float) -> float:
    raw = (env.get(name) or "").strip().lower().removesuffix("s")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        _fail(f"{name}: expected seconds, got {env[name]!r}")
    if not 0 <= value <= maximum:
        _fail(f"{name}: must be between 0 and {maximum:g} seconds")
    return value


def load_trust_bundle(path: Path) -> list[bytes]:
    """The DER certificates of a PEM bundle; ValueError naming what is wrong."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{path} holds no readable PEM certificate") from None
    return [c.public_bytes(serialization.Encoding.DER) for c in certificates]


def _profile(env: Mapping[str, str], label: str, prefix: str) -> EstProfileSettings:
    def name(knob: str) -> str:
        return prefix + knob

    if (env.get(name("ISSUER_ID")) or "").strip():
        _fail(
            f"{name('ISSUER_ID')}: certctl takes the issuer from the certificate profile; "
            f"remove it and give the profile in {name('PROFILE_ID')}"
        )
    profile_id = (env.get(name("PROFILE_ID")) or "").strip()
    if not profile_id:
        _fail(f"{name('PROFILE_ID')}: required (the certificate profile EST enrolls under)")
    modes_raw = env.get(name("ALLOWED_AUTH_MODES")) or ""
    modes = frozenset(m.strip().lower() for m in modes_raw.split(",") if m.strip())
    unknown = sorted(modes - AUTH_MODES)
    if unknown:
        _fail(f"{name('ALLOWED_AUTH_MODES')}: unknown modes {unknown} (use mtls, basic or both)")
    username = (env.get(name("ENROLLMENT_USERNAME")) or "").strip()
    if ":" in username:
        _fail(f"{name('ENROLLMENT_USERNAME')}: a Basic user name cannot contain ':'")
    password = env.get(name("ENROLLMENT_PASSWORD")) or ""
    if "basic" in modes:
        if len(password) < MIN_PASSWORD_LENGTH:
            _fail(
                f"{name('ENROLLMENT_PASSWORD')}: basic authentication needs a password of at "
                f"least {MIN_PASSWORD_LENGTH} characters"
            )
    elif password or username:
        which = "ENROLLMENT_PASSWORD" if password else "ENROLLMENT_USERNAME"
        _fail(
            f"{name(which)} is set but {name('ALLOWED_AUTH_MODES')} does not include basic; "
            "add basic or remove the credential"
        )
    mtls_enabled = env_bool(env, name("MTLS_ENABLED"))
    bundle = (env.get(name("MTLS_CLIENT_CA_TRUST_BUNDLE_PATH")) or "").strip()
    if not label and (mtls_enabled or bundle or "mtls" in modes):
        _fail(
            f"{name('MTLS_ENABLED')}: the legacy profile has no mTLS route; "
            "give the profile a label in CERTCTL_EST_PROFILES"
        )
    if "mtls" in modes and not mtls_enabled:
        _fail(f"{name('ALLOWED_AUTH_MODES')}: mtls needs {name('MTLS_ENABLED')}=true")
    if mtls_enabled:
        if not bundle:
            _fail(f"{name('MTLS_CLIENT_CA_TRUST_BUNDLE_PATH')}: required with MTLS_ENABLED")
        try:
            load_trust_bundle(Path(bundle))
        except ValueError as exc:
            _fail(f"{name('MTLS_CLIENT_CA_TRUST_BUNDLE_PATH')}: {exc}")
    elif bundle:
        _fail(f"{name('MTLS_CLIENT_CA_TRUST_BUNDLE_PATH')} is set but MTLS_ENABLED is not true")
    binding = env_bool(env, name("CHANNEL_BINDING_REQUIRED"))
    if binding and not mtls_enabled:
        _fail(f"{name('CHANNEL_BINDING_REQUIRED')}: channel binding is checked on the mTLS route")
    return EstProfileSettings(
        label=label,
        profile_id=profile_id,
        auth_modes=modes,
        username=username,
        password_hash=password_hasher().hash(password) if "basic" in modes else "",
        mtls_enabled=mtls_enabled,
        trust_bundle_path=bundle,
        channel_binding_required=binding,
        rate_limit_per_principal_24h=env_int(env, name("RATE_LIMIT_PER_PRINCIPAL_24H"), 0),
        serverkeygen_enabled=env_bool(env, name("SERVERKEYGEN_ENABLED")),
    )


def _parse(env: Mapping[str, str]) -> EstSettings:
    if not env_bool(env, "CERTCTL_EST_ENABLED"):
        return EstSettings()
    profiles: list[EstProfileSettings] = []
    if (env.get("CERTCTL_EST_PROFILE_ID") or "").strip():
        profiles.append(_profile(env, "", "CERTCTL_EST_"))
    raw = env.get("CERTCTL_EST_PROFILES") or ""
    seen: set[str] = set()
    for label in (part.strip() for part in raw.split(",")):
        if not label:
            continue
        if not LABEL.match(label):
            _fail(
                f"CERTCTL_EST_PROFILES: {label!r} is not a label (lower-case letters, digits and "
                "inner hyphens, at most 63 characters)"
            )
        if label in RESERVED_LABELS:
            _fail(f"CERTCTL_EST_PROFILES: {label!r} is reserved")
        key = label.upper().replace("-", "_")
        if key in seen:
            _fail(f"CERTCTL_EST_PROFILES: {label!r} is listed twice (or clashes by its variables)")
        seen.add(key)
        profiles.append(_profile(env, label, f"CERTCTL_EST_PROFILE_{key}_"))
    if not profiles:
        _fail("CERTCTL_EST_ENABLED: set CERTCTL_EST_PROFILE_ID or CERTCTL_EST_PROFILES")
    return EstSettings(
        enabled=True,
        profiles=tuple(profiles),
        issuance_wait_seconds=_seconds(env, "CERTCTL_EST_ISSUANCE_WAIT", 10.0, maximum=60),
        retry_after_seconds=env_int(env, "CERTCTL_EST_RETRY_AFTER", 10, minimum=1),
        max_request_bytes=env_int(env, "CERTCTL_EST_MAX_REQUEST_BYTES", 65536, minimum=4096),
    )
