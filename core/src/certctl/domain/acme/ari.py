"""ACME Renewal Information (RFC 9773): when a client should renew, and ``replaces`` in orders.

A certificate is named by ``base64url(AKI keyIdentifier) "." base64url(serial)``, the serial
being the DER INTEGER's content octets (a leading zero kept when the high bit is set — the Go
certctl drops it). The window opens at the time certctl's own renewals use for certificates
whose key it holds (``renewal_policies.timing.renewal_time``: the certificate's, profile's or
policy's renewal time, else two thirds of the lifetime) and closes halfway from there to expiry
(five sixths by default): late enough not to waste a certificate, early enough that a client
polling every few hours and retrying a failed renewal for days still renews before expiry. No
jitter: RFC 9773 §4.3 has each client pick its own moment inside the window.

Shorter windows: a revoked certificate's window lies in the past (renew at once, §4.2); one
superseded by a newer version, or already expired, is open now for a day; an operator-scheduled
replacement (``replace_by``, see ``replacement_controller.py``) closes the window at the
deadline. The replacement's explanation URL is not stored (no column for it): only the audit
row and the API response carry it, so ``explanationURL`` is never sent.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from sqlalchemy import select

from certctl.db.base import utcnow
from certctl.db.models import (
    AcmeOrder,
    CertificateProfile,
    CertificateRevocation,
    CertificateVersion,
    ManagedCertificate,
    RenewalPolicy,
)
from certctl.domain.acme.problems import AcmeProblem
from certctl.domain.renewal_policies.timing import renew_before_days_of, renewal_time

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from certctl.settings import Settings

__all__ = ["Window", "ari_cert_id", "renewal_info", "replaced_certificate", "replacement_done"]

_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_PAST = timedelta(hours=1)
"""A revoked certificate's window closed this long ago: renew at once (RFC 9773 §4.2)."""
_SOON = timedelta(hours=24)
"""How long the window of a superseded or expired certificate stays open."""


@dataclass(frozen=True, slots=True)
class Window:
    """A suggested renewal window."""

    start: datetime
    end: datetime
    explanation_url: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _serial_octets(serial: int) -> bytes:
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big") if serial else b"\x00"


def _key_identifier(cert: x509.Certificate) -> bytes | None:
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return aki.key_identifier


def ari_cert_id(cert: x509.Certificate) -> str:
    """The RFC 9773 §4.1 identifier of ``cert``; ValueError when it has no AKI keyIdentifier."""
    aki = _key_identifier(cert)
    if aki is None:
        raise ValueError("the certificate has no authority key identifier")
    return f"{_b64(aki)}.{_b64(_serial_octets(cert.serial_number))}"


def _parse(cert_id: str) -> tuple[bytes, str]:
    """(AKI keyIdentifier, serial as certctl stores it: lower-case hex) of an ARI id."""
    parts = cert_id.split(".")
    if len(parts) != 2 or len(cert_id) > 200 or not all(map(_BASE64URL.fullmatch, parts)):
        raise AcmeProblem(
            "malformed", "a certificate id is base64url(AKI).base64url(serial), unpadded"
        )
    try:
        aki, serial = (base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in parts)
    except (binascii.Error, ValueError):
        raise AcmeProblem("malformed", "the certificate id is not base64url") from None
    if serial[0] & 0x80:
        raise AcmeProblem("malformed", "the certificate id names a negative serial")
    if len(serial) > 1 and serial[0] == 0 and not serial[1] & 0x80:
        raise AcmeProblem("malformed", "the serial is not minimally encoded (DER)")
    return aki, format(int.from_bytes(serial, "big"), "x")


async def _find(
    session: AsyncSession, profile_id: str, cert_id: str
) -> tuple[CertificateVersion, ManagedCertificate]:
    aki, serial = _parse(cert_id)
    rows = await session.execute(
        select(CertificateVersion, ManagedCertificate)
        .join(ManagedCertificate, ManagedCertificate.id == CertificateVersion.certificate_id)
        .where(
            CertificateVersion.serial_number == serial,
            ManagedCertificate.profile_id == profile_id,
        )
    )
    for version, cert in rows:
        parsed = x509.load_pem_x509_certificate(version.certificate_pem.encode())
        if _key_identifier(parsed) == aki:
            return version, cert
    raise AcmeProblem("malformed", "no certificate of this directory has that id", status=404)


async def renewal_info(
    session: AsyncSession, settings: Settings, *, profile_id: str, cert_id: str
) -> Window:
    """The suggested window for the certificate ``cert_id`` names."""
    version, cert = await _find(session, profile_id, cert_id)
    now = utcnow()
    revoked = await session.scalar(
        select(CertificateRevocation.id).where(CertificateRevocation.version_id == version.id)
    )
    if revoked is not None:
        return Window(start=now - 2 * _PAST, end=now - _PAST)
    superseded = cert.current_version_id is not None and cert.current_version_id != version.id
    if superseded or version.not_after <= now:
        return Window(start=now, end=now + _SOON)
    profile = await session.get(CertificateProfile, cert.profile_id) if cert.profile_id else None
    # The effective policy as the renewal loop and the lifecycle see it: own, else the profile's.
    policy_id = cert.renewal_policy_id or (profile.renewal_policy_id if profile else None)
    policy = await session.get(RenewalPolicy, policy_id) if policy_id else None
    start = (
        renewal_time(
            certificate_id=cert.id,
            version=version.version,
            not_before=version.not_before,
            not_after=version.not_after,
            policy=policy,
            renew_before_days=renew_before_days_of(cert, profile),
            default_jitter_percent=0,
        )
        or version.not_before + (version.not_after - version.not_before) * 2 / 3
    )
    end = start + (version.not_after - start) / 2
    if cert.replace_by is not None and cert.replace_by < end:
        if cert.replace_by <= now:
            return Window(start=cert.replace_by - _PAST, end=cert.replace_by)
        return Window(start=min(start, now), end=cert.replace_by)
    return Window(start=start, end=end)


async def replaced_certificate(
    session: AsyncSession, *, account_id: str, profile_id: str, cert_id: str
) -> str:
    """The managed certificate a new order's ``replaces`` names (RFC 9773 §5); checks that
    this account ordered it and that no earlier order replaced it already."""
    version, cert = await _find(session, profile_id, cert_id)
    owned = await session.scalar(
        select(AcmeOrder.id).where(
            AcmeOrder.version_id == version.id, AcmeOrder.account_id == account_id
        )
    )
    if owned is None:
        raise AcmeProblem("unauthorized", "this account did not order the certificate it replaces")
    earlier = await session.scalar(
        select(AcmeOrder.id).where(
            AcmeOrder.replaces == cert_id,
            AcmeOrder.profile_id == profile_id,
            AcmeOrder.status != "invalid",
        )
    )
    if earlier is not None:
        raise AcmeProblem("alreadyReplaced", f"order {earlier} already replaces this certificate")
    return cert.id


async def replacement_done(session: AsyncSession, *, profile_id: str, cert_id: str) -> None:
    """A ``replaces`` order became valid: the certificate it names needs no replacement now,
    so a scheduled ``replace_by`` is cleared (the caller commits)."""
    try:
        _, cert = await _find(session, profile_id, cert_id)
    except AcmeProblem:
        return  # checked at new-order; gone since (the certificate was deleted)
    cert.replace_by = None
