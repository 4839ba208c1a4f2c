"""Intune-style signed dynamic challenges: a compact JWS from the certificate connector.

The challenge password of such a request is ``header.payload.signature`` (base64url), signed
RS256 or ES256 by a certificate in the profile's connector bundle (``alg: none`` and every other
algorithm are refused before any key is tried). The claims bind the challenge to one
enrolment::

    {"ver": 1, "iss": "<connector>", "sub": "<device id>", "aud": "<INTUNE_AUDIENCE>",
     "iat": 1767225600, "exp": 1767229200, "cn": "<CSR common name>",
     "sans": ["<every SAN of the CSR>"]}

``iat``/``exp`` are checked with ``INTUNE_CLOCK_SKEW_TOLERANCE`` and ``exp - iat`` may not exceed
``INTUNE_CHALLENGE_VALIDITY``. A consumed challenge is stored (its digest) in the database, so a
replay is refused by every replica, and the same table counts a device's enrolments for
``INTUNE_PER_DEVICE_RATE_LIMIT_24H`` (keyed by issuer and subject).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import ScepChallenge
from certctl.domain.scep.challenge import digest
from certctl.domain.scep.cms import FailInfo, ScepFailure
from certctl.domain.scep.names import csr_names
from certctl.domain.scep.settings import ScepProfileSettings, load_bundle

__all__ = ["IntuneVerifier"]

log = logging.getLogger("certctl.scep.intune")
MAX_CHALLENGE = 16 * 1024
SUPPORTED_VERSIONS = frozenset({1})


def _b64url(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise ScepFailure(FailInfo.BAD_REQUEST, "the Intune challenge is not base64url") from None


@dataclass
class _Trust:
    certificates: list[x509.Certificate]
    loaded_at: float
    error: str = ""


@dataclass
class IntuneVerifier:
    """Trust bundles of every Intune-enabled profile, and what happened to challenges."""

    profiles: dict[str, ScepProfileSettings]
    trust: dict[str, _Trust] = field(default_factory=dict)
    stats: dict[str, Counter[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, profiles: list[ScepProfileSettings]) -> IntuneVerifier:
        verifier = cls({p.name: p for p in profiles if p.intune.enabled})
        for name, profile in verifier.profiles.items():
            verifier.trust[name] = _Trust(
                load_bundle(profile.env_prefix + "INTUNE_CONNECTOR_CERT_PATH",
                            profile.intune.connector_cert_path),
                time.time(),
            )  # fmt: skip
            verifier.stats[name] = Counter()
        return verifier

    def reload(self) -> dict[str, Any]:
        """Re-read every bundle; a bundle that fails to load keeps the previous one."""
        report: dict[str, Any] = {}
        for name, profile in self.profiles.items():
            try:
                certificates = load_bundle("bundle", profile.intune.connector_cert_path)
            except ValueError as exc:
                self.trust[name].error = str(exc)
                report[name] = {"reloaded": False, "error": str(exc),
                                "certificates": len(self.trust[name].certificates)}  # fmt: skip
                continue
            self.trust[name] = _Trust(certificates, time.time())
            report[name] = {"reloaded": True, "certificates": len(certificates)}
        return report

    def describe(self) -> dict[str, Any]:
        return {
            name: {
                "certificates": len(self.trust[name].certificates),
                "loaded_at": datetime.fromtimestamp(self.trust[name].loaded_at, UTC).isoformat(),
                "last_reload_error": self.trust[name].error,
                "counters": dict(self.stats[name]),
            }
            for name in self.profiles
        }

    def looks_like(self, password: str) -> bool:
        """An Intune challenge is long and has exactly two dots (a compact JWS)."""
        return len(password) > 200 and password.count(".") == 2

    def enabled_for(self, profile: ScepProfileSettings) -> bool:
        return profile.name in self.profiles

    def _fail(self, profile: str, reason: str, counter: str = "rejected") -> ScepFailure:
        self.stats[profile][counter] += 1
        log.info("Intune challenge refused for SCEP profile %r: %s", profile or "/scep", reason)
        return ScepFailure(FailInfo.BAD_REQUEST, f"Intune challenge refused: {reason}")

    def verify(
        self, profile: ScepProfileSettings, token: str, csr: x509.CertificateSigningRequest
    ) -> dict[str, Any]:
        """The claims of a valid challenge for ``csr``; a badRequest failure otherwise."""
        name = profile.name
        if len(token) > MAX_CHALLENGE:
            raise self._fail(name, "too long")
        head_b64, body_b64, sig_b64 = token.split(".")
        try:
            header = json.loads(_b64url(head_b64))
            claims = json.loads(_b64url(body_b64))
        except (ValueError, ScepFailure):
            raise self._fail(name, "header or claims are not JSON") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise self._fail(name, "header and claims must be JSON objects")
        alg = header.get("alg")
        if alg not in ("RS256", "ES256"):
            raise self._fail(name, f"algorithm {alg!r} is not allowed (RS256 or ES256)")
        signature = _b64url(sig_b64)
        signed = f"{head_b64}.{body_b64}".encode("ascii", "replace")
        if not any(_verifies(c, alg, signature, signed) for c in self.trust[name].certificates):
            raise self._fail(name, "no connector certificate verifies the signature")
        if claims.get("ver", 1) not in SUPPORTED_VERSIONS:
            raise self._fail(name, f"claims version {claims.get('ver')!r} is not supported")
        settings = profile.intune
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int | float) or not isinstance(exp, int | float):
            raise self._fail(name, "iat and exp are required numbers")
        if iat > now + settings.clock_skew_seconds:
            raise self._fail(name, "issued in the future")
        if exp < now - settings.clock_skew_seconds:
            raise self._fail(name, "expired", "expired")
        if exp - iat > settings.challenge_validity_seconds:
            raise self._fail(name, "valid for longer than INTUNE_CHALLENGE_VALIDITY")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if settings.audience not in audiences:
            raise self._fail(name, "wrong audience")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise self._fail(name, "no device (sub)")
        common_name, sans = csr_names(csr)
        if "cn" not in claims and "sans" not in claims:
            raise self._fail(name, "the challenge names neither cn nor sans")
        if "cn" in claims and claims["cn"] != common_name:
            raise self._fail(name, "the CSR common name is not the one the challenge names")
        if "sans" in claims:
            wanted = claims["sans"]
            if not isinstance(wanted, list) or {str(v).lower() for v in wanted} != {
                v.lower() for v in sans
            }:
                raise self._fail(name, "the CSR SANs are not the ones the challenge names")
        return claims

    async def consume(
        self,
        session: AsyncSession,
        profile: ScepProfileSettings,
        token: str,
        csr: x509.CertificateSigningRequest,
        transaction_id: str,
    ) -> str:
        """Verify, then record the challenge as used (replay) and count the device (limit)."""
        claims = self.verify(profile, token, csr)
        name = profile.name
        device = f"{claims.get('iss', '')}|{claims['sub']}"[:255]
        key = digest(token)
        if await session.scalar(select(ScepChallenge.id).where(ScepChallenge.digest == key)):
            raise self._fail(name, "already used (replay)", "replayed")
        since = utcnow() - timedelta(hours=24)
        count = await session.scalar(
            select(func.count()).where(
                ScepChallenge.kind == "intune",
                ScepChallenge.scep_profile == name,
                ScepChallenge.device == device,
                ScepChallenge.used_at > since,
            )
        )
        if (count or 0) >= profile.intune.per_device_limit_24h:
            raise self._fail(name, "the device reached its 24-hour enrolment limit", "rate_limited")
        now = utcnow()
        row = ScepChallenge(
            id=new_id("scc"),
            scep_profile=name,
            kind="intune",
            digest=key,
            device=device,
            created_by=str(claims.get("iss", ""))[:128],
            created_at=now,
            expires_at=datetime.fromtimestamp(float(claims["exp"]), UTC),
            used_at=now,
            used_by=transaction_id,
        )
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            raise self._fail(name, "already used (replay)", "replayed") from None
        self.stats[name]["accepted"] += 1
        return device


def _verifies(certificate: x509.Certificate, alg: str, signature: bytes, data: bytes) -> bool:
    key = certificate.public_key()
    try:
        if alg == "RS256" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            return True
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePublicKey):
            if key.curve.name != "secp256r1" or len(signature) != 64:
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, data, ec.ECDSA(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False
