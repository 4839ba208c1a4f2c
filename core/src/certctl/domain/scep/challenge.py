"""Challenge passwords: the profile's static secret, one-time passwords, Intune challenges.

The static password is compared in constant time. One-time passwords are minted through the
admin API, stored only as SHA-256 digests (they are 192 random bits, so a plain digest cannot
be brute-forced) and consumed by a conditional ``UPDATE`` in the enrolment's own transaction:
single use across replicas, and not used up when the enrolment is refused later on.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import ScepChallenge
from certctl.domain.scep.cms import FailInfo, ScepFailure

if TYPE_CHECKING:
    from certctl.domain.scep.intune import IntuneVerifier
    from certctl.domain.scep.settings import ScepProfileSettings

__all__ = ["ChallengeResult", "challenge_password", "check_challenge", "mint_otp"]

OTP_BYTES = 24


@dataclass(frozen=True, slots=True)
class ChallengeResult:
    """How the request proved itself: ``static``, ``otp`` or ``intune`` (then ``device``)."""

    kind: str
    device: str = ""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def challenge_password(csr: x509.CertificateSigningRequest) -> str:
    """The CSR's challengePassword attribute (PKCS#9), or a badRequest failure."""
    try:
        attribute = csr.attributes.get_attribute_for_oid(x509.oid.AttributeOID.CHALLENGE_PASSWORD)
    except x509.AttributeNotFound:
        raise ScepFailure(FailInfo.BAD_REQUEST, "the CSR has no challengePassword") from None
    except ValueError:
        raise ScepFailure(FailInfo.BAD_REQUEST, "the CSR attributes are malformed") from None
    try:
        value = attribute.value.decode("utf-8")
    except UnicodeDecodeError:
        raise ScepFailure(FailInfo.BAD_REQUEST, "the challengePassword is not text") from None
    if not value:
        raise ScepFailure(FailInfo.BAD_REQUEST, "the challengePassword is empty")
    return value


async def check_challenge(
    session: AsyncSession,
    profile: ScepProfileSettings,
    csr: x509.CertificateSigningRequest,
    transaction_id: str,
    intune: IntuneVerifier | None,
) -> ChallengeResult:
    """Accept the CSR's challenge or raise a badRequest failure (the caller commits)."""
    password = challenge_password(csr)
    if intune is not None and intune.looks_like(password):
        device = await intune.consume(session, profile, password, csr, transaction_id)
        return ChallengeResult("intune", device)
    if hmac.compare_digest(password.encode(), profile.challenge_password.encode()):
        return ChallengeResult("static")
    now = utcnow()
    used = await session.execute(
        update(ScepChallenge)
        .where(
            ScepChallenge.digest == digest(password),
            ScepChallenge.kind == "otp",
            ScepChallenge.scep_profile == profile.name,
            ScepChallenge.used_at.is_(None),
            ScepChallenge.expires_at > now,
        )
        .values(used_at=now, used_by=transaction_id)
    )
    if used.rowcount == 1:  # type: ignore[attr-defined]
        return ChallengeResult("otp")
    raise ScepFailure(FailInfo.BAD_REQUEST, "the challenge password is not accepted")


async def mint_otp(
    session: AsyncSession, profile: str, ttl_seconds: int, label: str, created_by: str
) -> tuple[ScepChallenge, str]:
    """A new one-time password for ``profile``; the plaintext is returned once, never stored."""
    secret = secrets.token_urlsafe(OTP_BYTES)
    now = utcnow()
    row = ScepChallenge(
        id=new_id("scc"),
        scep_profile=profile,
        kind="otp",
        digest=digest(secret),
        device=label,
        created_by=created_by,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
        used_by="",
    )
    session.add(row)
    return row, secret


def otp_status(row: ScepChallenge, now: datetime) -> str:
    if row.used_at is not None:
        return "used"
    return "expired" if row.expires_at <= now else "unused"
