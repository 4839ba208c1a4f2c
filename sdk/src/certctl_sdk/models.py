"""Wire types shared by several connector families."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

__all__ = [
    "CertificateBundle",
    "ExtendedKeyUsage",
    "KeyType",
    "RevocationReason",
    "SubjectAltNames",
]


class KeyType(enum.StrEnum):
    """Key algorithms a certificate may carry, by the names the API uses."""

    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    ED25519 = "ed25519"


class ExtendedKeyUsage(enum.StrEnum):
    """Extended key usages by their RFC 5280 short names."""

    SERVER_AUTH = "serverAuth"
    CLIENT_AUTH = "clientAuth"
    CODE_SIGNING = "codeSigning"
    EMAIL_PROTECTION = "emailProtection"
    TIME_STAMPING = "timeStamping"
    OCSP_SIGNING = "OCSPSigning"


class RevocationReason(enum.IntEnum):
    """RFC 5280 §5.3.1 CRLReason codes (7 is unused by the RFC)."""

    UNSPECIFIED = 0
    KEY_COMPROMISE = 1
    CA_COMPROMISE = 2
    AFFILIATION_CHANGED = 3
    SUPERSEDED = 4
    CESSATION_OF_OPERATION = 5
    CERTIFICATE_HOLD = 6
    REMOVE_FROM_CRL = 8
    PRIVILEGE_WITHDRAWN = 9
    AA_COMPROMISE = 10


class SubjectAltNames(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Subject alternative names, grouped by type."""

    dns: tuple[str, ...] = ()
    ip: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    uri: tuple[str, ...] = ()

    def all(self) -> tuple[str, ...]:
        """Every name, in a stable order, for policy checks and display."""
        return self.dns + self.ip + self.email + self.uri


class CertificateBundle(msgspec.Struct, frozen=True, kw_only=True):
    """An issued certificate with its chain, as PEM, plus the facts people filter on."""

    certificate_pem: str
    chain_pem: tuple[str, ...]
    serial: str
    """Lower-case hexadecimal, no separators."""
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    """Lower-case hexadecimal SHA-256 of the DER certificate."""
