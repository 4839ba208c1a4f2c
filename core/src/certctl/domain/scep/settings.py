"""SCEP settings: ``CERTCTL_SCEP_*`` parsed into :class:`ScepSettings`, with the RA preflight.

Profiles are named by ``CERTCTL_SCEP_PROFILES=a,b`` and configured by
``CERTCTL_SCEP_PROFILE_<NAME>_*`` (``NAME`` upper-cased, ``-`` as ``_``); the legacy un-named
profile (``CERTCTL_SCEP_PROFILE_ID`` and friends) is served at ``/scep`` itself. Every enabled
profile needs a challenge password and an RA certificate/key pair, even with Intune or mTLS on:
the password stays the application-layer boundary, and a server that would answer every
PKIOperation with an error should not start.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from certctl.lib.env import SettingsError, env_bool, env_duration, env_int

__all__ = [
    "IntuneSettings",
    "RaCredentials",
    "ScepProfileSettings",
    "ScepSettings",
    "load_ra",
]

PATH_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
RESERVED_PATH_IDS = frozenset({"pkiclient.exe", "scep"})


def _error(message: str) -> Exception:
    return SettingsError(message)


class IntuneSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Microsoft Intune dynamic challenges for one profile (see :mod:`.intune`)."""

    enabled: bool = False
    connector_cert_path: str = ""
    """PEM bundle of the Intune Certificate Connector's signing certificates."""
    audience: str = ""
    """The ``aud`` a challenge must carry (this SCEP URL, as configured in Intune)."""
    challenge_validity_seconds: int = 3600
    clock_skew_seconds: int = 60
    per_device_limit_24h: int = 3


class ScepProfileSettings(msgspec.Struct, frozen=True, kw_only=True):
    """One SCEP endpoint: ``/scep/<name>`` (``name`` empty: the legacy ``/scep``)."""

    name: str
    profile_id: str
    """A certificate profile's id or name; it names the issuer and the policy."""
    challenge_password: str = ""
    ra_cert_path: str = ""
    ra_key_path: str = ""
    mtls_enabled: bool = False
    mtls_trust_bundle_path: str = ""
    intune: IntuneSettings = IntuneSettings()

    def __repr__(self) -> str:
        # The challenge password never reaches a log line.
        return f"ScepProfileSettings(name={self.name!r}, profile_id={self.profile_id!r})"

    @property
    def label(self) -> str:
        """How messages name this profile."""
        return self.name or "(legacy /scep)"

    @property
    def env_prefix(self) -> str:
        if not self.name:
            return "CERTCTL_SCEP_"
        return f"CERTCTL_SCEP_PROFILE_{self.name.upper().replace('-', '_')}_"


class ScepSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the SCEP server reads from ``CERTCTL_SCEP_*``."""

    enabled: bool = False
    profiles: tuple[ScepProfileSettings, ...] = ()
    allow_single_des: bool = False
    """Accept requests encrypted with single DES (micromdm ``scepclient`` sends nothing else)."""
    issuance_wait_seconds: int = 10
    """How long a PKIOperation waits for the job engine before answering PENDING."""
    max_message_bytes: int = 256 * 1024
    transaction_ttl_seconds: int = 7 * 86400
    """How long a resent request (same transactionID and CSR) gets its original answer."""
    otp_max_ttl_seconds: int = 7 * 86400

    def profile(self, name: str) -> ScepProfileSettings | None:
        """The profile served at ``/scep/<name>`` (``""``: ``/scep``)."""
        return next((p for p in self.profiles if p.name == name), None)

    def mtls_profiles(self) -> list[ScepProfileSettings]:
        """The profiles with a ``/scep-mtls`` endpoint (none while SCEP is off)."""
        return [p for p in self.profiles if self.enabled and p.mtls_enabled]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ScepSettings:
        """Parse and check ``CERTCTL_SCEP_*``; an enabled, broken profile is a SettingsError."""
        enabled = env_bool(env, "CERTCTL_SCEP_ENABLED", False)
        names = [n.strip() for n in (env.get("CERTCTL_SCEP_PROFILES") or "").split(",")]
        names = [n for n in names if n]
        profiles: list[ScepProfileSettings] = []
        seen: set[str] = set()
        for name in names:
            if not PATH_ID.match(name) or name in RESERVED_PATH_IDS:
                raise _error(
                    f"CERTCTL_SCEP_PROFILES: {name!r} is not a path id ([a-z0-9-]+, no leading "
                    "or trailing '-', not 'scep' or 'pkiclient.exe')"
                )
            if name in seen:
                raise _error(f"CERTCTL_SCEP_PROFILES: {name!r} is listed twice")
            seen.add(name)
            profiles.append(_profile(env, name))
        if (env.get("CERTCTL_SCEP_PROFILE_ID") or "").strip():
            profiles.insert(0, _profile(env, ""))
        settings = cls(
            enabled=enabled,
            profiles=tuple(profiles),
            allow_single_des=env_bool(env, "CERTCTL_SCEP_ALLOW_SINGLE_DES", False),
            issuance_wait_seconds=env_duration(env, "CERTCTL_SCEP_ISSUANCE_WAIT", 10),
            max_message_bytes=env_int(env, "CERTCTL_SCEP_MAX_MESSAGE_SIZE", 256 * 1024, 4096),
            transaction_ttl_seconds=env_duration(env, "CERTCTL_SCEP_TRANSACTION_TTL", 7 * 86400),
            otp_max_ttl_seconds=env_duration(env, "CERTCTL_SCEP_OTP_MAX_TTL", 7 * 86400),
        )
        if enabled:
            settings.preflight()
        return settings

    def preflight(self) -> None:
        """Refuse to start with a profile that could not answer: no challenge, no usable RA."""
        if not self.profiles:
            raise _error(
                "CERTCTL_SCEP_ENABLED=true but no profile is configured: set "
                "CERTCTL_SCEP_PROFILE_ID (served at /scep) or CERTCTL_SCEP_PROFILES"
            )
        for profile in self.profiles:
            prefix = profile.env_prefix
            if not profile.challenge_password:
                raise _error(
                    f"{prefix}CHALLENGE_PASSWORD is required for SCEP profile {profile.label} "
                    "(also with Intune or mTLS: it stays the application-layer check)"
                )
            if not profile.ra_cert_path or not profile.ra_key_path:
                raise _error(
                    f"{prefix}RA_CERT_PATH and {prefix}RA_KEY_PATH are required for SCEP "
                    f"profile {profile.label} (or the global CERTCTL_SCEP_RA_CERT_PATH/_KEY_PATH)"
                )
            load_ra(profile)
            if profile.mtls_enabled and not profile.mtls_trust_bundle_path:
                raise _error(f"{prefix}MTLS_CLIENT_CA_TRUST_BUNDLE_PATH is required with mTLS")
            if profile.mtls_enabled:
                load_bundle(
                    f"{prefix}MTLS_CLIENT_CA_TRUST_BUNDLE_PATH", profile.mtls_trust_bundle_path
                )
            intune = profile.intune
            if intune.enabled:
                if not intune.connector_cert_path or not intune.audience:
                    raise _error(
                        f"{prefix}INTUNE_CONNECTOR_CERT_PATH and {prefix}INTUNE_AUDIENCE are "
                        "required with Intune"
                    )
                load_bundle(f"{prefix}INTUNE_CONNECTOR_CERT_PATH", intune.connector_cert_path)


def _profile(env: Mapping[str, str], name: str) -> ScepProfileSettings:
    prefix = (
        "CERTCTL_SCEP_" if not name else f"CERTCTL_SCEP_PROFILE_{name.upper().replace('-', '_')}_"
    )

    def get(suffix: str, fallback: str = "") -> str:
        return (env.get(prefix + suffix) or fallback).strip()

    profile_id = get("PROFILE_ID")
    if not profile_id:
        raise _error(f"{prefix}PROFILE_ID: the certificate profile SCEP profile {name} issues from")
    return ScepProfileSettings(
        name=name,
        profile_id=profile_id,
        challenge_password=env.get(prefix + "CHALLENGE_PASSWORD") or "",
        ra_cert_path=get("RA_CERT_PATH", env.get("CERTCTL_SCEP_RA_CERT_PATH", "")),
        ra_key_path=get("RA_KEY_PATH", env.get("CERTCTL_SCEP_RA_KEY_PATH", "")),
        mtls_enabled=env_bool(env, prefix + "MTLS_ENABLED", False),
        mtls_trust_bundle_path=get("MTLS_CLIENT_CA_TRUST_BUNDLE_PATH"),
        intune=IntuneSettings(
            enabled=env_bool(env, prefix + "INTUNE_ENABLED", False),
            connector_cert_path=get("INTUNE_CONNECTOR_CERT_PATH"),
            audience=get("INTUNE_AUDIENCE"),
            challenge_validity_seconds=env_duration(
                env, prefix + "INTUNE_CHALLENGE_VALIDITY", 3600
            ),
            clock_skew_seconds=env_duration(env, prefix + "INTUNE_CLOCK_SKEW_TOLERANCE", 60),
            per_device_limit_24h=env_int(env, prefix + "INTUNE_PER_DEVICE_RATE_LIMIT_24H", 3, 1),
        ),
    )


@dataclass(frozen=True, slots=True)
class RaCredentials:
    """A profile's RA: it decrypts requests and signs replies."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    def __repr__(self) -> str:
        return f"RaCredentials({self.certificate.subject.rfc4514_string()})"


def load_ra(profile: ScepProfileSettings) -> RaCredentials:
    """Load and check the RA pair: readable, key file 0600, RSA, matching, currently valid."""
    prefix = profile.env_prefix
    cert_path, key_path = Path(profile.ra_cert_path), Path(profile.ra_key_path)
    try:
        cert_bytes = cert_path.read_bytes()
        key_mode = key_path.stat().st_mode
        key_bytes = key_path.read_bytes()
    except OSError as exc:
        raise _error(f"{prefix}RA_CERT_PATH/RA_KEY_PATH: cannot read: {exc}") from None
    if stat.S_IMODE(key_mode) & 0o077:
        raise _error(
            f"{prefix}RA_KEY_PATH: {key_path} is readable by group or others "
            f"(mode {stat.S_IMODE(key_mode):o}); chmod 600 it"
        )
    try:
        certificate = x509.load_pem_x509_certificate(cert_bytes)
    except ValueError:
        try:
            certificate = x509.load_der_x509_certificate(cert_bytes)
        except ValueError:
            raise _error(f"{prefix}RA_CERT_PATH: {cert_path} is not a certificate") from None
    try:
        key = serialization.load_pem_private_key(key_bytes, password=None)
    except (ValueError, TypeError):
        raise _error(f"{prefix}RA_KEY_PATH: {key_path} is not an unencrypted PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        # SCEP's key transport (RFC 8894 §3.1) is RSA: clients encrypt to the RA's public key.
        raise _error(f"{prefix}RA_KEY_PATH: the RA key must be RSA (SCEP encrypts to it)")
    if key.public_key().public_numbers() != certificate.public_key().public_numbers():  # type: ignore[union-attr]
        raise _error(f"{prefix}RA_CERT_PATH/RA_KEY_PATH: the key does not match the certificate")
    now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise _error(
            f"{prefix}RA_CERT_PATH: the RA certificate is not valid now (valid "
            f"{certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d})"
        )
    return RaCredentials(certificate=certificate, key=key)


def load_bundle(name: str, path: str) -> list[x509.Certificate]:
    """A PEM bundle of at least one certificate."""
    try:
        certificates = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise _error(f"{name}: {path} is not a readable PEM certificate bundle: {exc}") from None
    return certificates
