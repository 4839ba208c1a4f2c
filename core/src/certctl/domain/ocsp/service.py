"""Answering RFC 6960 OCSP requests for the issuers whose revocations the core records.

Each issuer that declares :attr:`IssuerCapability.OCSP_SIGNING` and
:attr:`IssuerCapability.CA_CERTIFICATES` gets a *delegated responder* (RFC 6960 §4.2.2.2): the
core generates an ECDSA P-256 key, the issuer signs a certificate for it with id-kp-OCSPSigning
and id-pkix-ocsp-nocheck, and the pair is stored in ``ocsp_responders`` (key sealed with the
context ``ocsp-responder:<issuer_id>``). A responder within ``CERTCTL_OCSP_ROTATION_GRACE`` of
expiry is replaced on its next use; an optimistic ``UPDATE … WHERE created_at = <old>`` lets one
process win a concurrent rotation and the others adopt its result.

Status per serial: **revoked** when ``certificate_revocations`` lists it for the issuer,
**good** when a stored certificate version of a certificate of this issuer carries it, else
**unknown** (also when the request's issuer name or key hash is not this issuer's CA).

Signed good/revoked answers to requests without a nonce are cached in-process per
(issuer, CertID hash algorithm, serial) for at most :data:`CACHE_SECONDS`. Every request reads
one row first — the issuer, its responder and the number and latest time of its revocations —
and a cached answer is used only while that snapshot is unchanged, so a revocation (committed by
any process) reaches the very next response.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from certctl.db.base import utcnow
from certctl.db.models import (
    CertificateRevocation,
    CertificateVersion,
    ConnectorInstance,
    ManagedCertificate,
    OcspResponder,
)
from certctl.domain.ocsp.ratelimit import RateLimiter
from certctl.lib.keys import build_csr, private_key_pem
from certctl_sdk import Issuer, IssueRequest, PendingIssuance
from certctl_sdk.issuer import IssuerCapability
from certctl_sdk.models import ExtendedKeyUsage, SubjectAltNames

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = [
    "CACHE_SECONDS",
    "RESPONSE_VALIDITY",
    "OcspResponderService",
    "Signed",
    "issuer_key_hash",
    "responder_context",
    "unsuccessful",
]

_log = logging.getLogger("certctl.ocsp")

RESPONSE_VALIDITY = timedelta(hours=1)
"""nextUpdate - thisUpdate of every response."""
CACHE_SECONDS = 300
"""A cached response is at most this old, so it always has 55 minutes of validity left."""
_CACHE_ENTRIES = 100_000

_REASONS: dict[int, x509.ReasonFlags] = {
    0: x509.ReasonFlags.unspecified,
    1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold,
    8: x509.ReasonFlags.remove_from_crl,
    9: x509.ReasonFlags.privilege_withdrawn,
    10: x509.ReasonFlags.aa_compromise,
}
_REQUIRED = frozenset({IssuerCapability.OCSP_SIGNING, IssuerCapability.CA_CERTIFICATES})


def responder_context(issuer_id: str) -> str:
    """Encryption context of a responder's private key."""
    return f"ocsp-responder:{issuer_id}"


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned error response (malformedRequest, unauthorized, tryLater, …) in DER."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )


def _der_length(data: bytes, at: int) -> tuple[int, int]:
    """(length, offset of the contents) of the DER element whose length octets start at ``at``."""
    first = data[at]
    if first < 0x80:
        return first, at + 1
    count = first & 0x7F
    return int.from_bytes(data[at + 1 : at + 1 + count], "big"), at + 1 + count


def issuer_key_hash(ca: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """Hash of the CA's subjectPublicKey BIT STRING value (RFC 6960 §4.1.1 issuerKeyHash)."""
    spki = ca.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _, inner = _der_length(spki, 1)  # SubjectPublicKeyInfo SEQUENCE
    algorithm_length, algorithm_at = _der_length(spki, inner + 1)  # AlgorithmIdentifier
    bit_string = algorithm_at + algorithm_length
    length, contents = _der_length(spki, bit_string + 1)
    key = spki[contents + 1 : contents + length]  # skip the unused-bits octet
    digest = hashes.Hash(algorithm)
    digest.update(key)
    return digest.finalize()


def _name_hash(ca: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(ca.subject.public_bytes())
    return digest.finalize()


class Signed(NamedTuple):
    """A signed OCSP response and whether HTTP caches may keep it until ``next_update``."""

    der: bytes
    next_update: datetime | None
    """None: the response answers a nonce and must not be cached."""


class _Snapshot(NamedTuple):
    """What one query tells about an issuer; any change invalidates its cached responses."""

    issuer: ConnectorInstance
    responder_created_at: datetime | None
    responder_not_after: datetime | None
    revocations: int
    last_revocation: datetime | None


class _Responder(NamedTuple):
    stamp: tuple[Any, ...]
    """(issuer updated_at, responder created_at): the in-memory copy is used while it matches."""
    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes
    ca: x509.Certificate
    digests: dict[str, tuple[bytes, bytes]]
    """CertID hash algorithm name → (issuerNameHash, issuerKeyHash) of the CA."""

    def ca_hashes(self, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
        found = self.digests.get(algorithm.name)
        if found is None:
            found = (_name_hash(self.ca, algorithm), issuer_key_hash(self.ca, algorithm))
            self.digests[algorithm.name] = found
        return found


class _Cached(NamedTuple):
    stamp: tuple[Any, ...]
    der: bytes
    next_update: datetime
    stored_at: datetime


class OcspResponderService:
    """Per-process responder state: loaded responder keys, the response cache, locks."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.limiter = RateLimiter(runtime.settings.ocsp_rate_limit_per_ip_min)
        self._responders: dict[str, _Responder] = {}
        self._cache: OrderedDict[tuple[str, str, int], _Cached] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    # -- answering ------------------------------------------------------------------------

    async def respond(self, issuer_id: str, request: ocsp.OCSPRequest) -> Signed | bytes:
        """Answer one parsed request; bytes are an unsuccessful response (unauthorized, …)."""
        algorithm = request.hash_algorithm  # raises UnsupportedAlgorithm for exotic ones
        try:
            nonce_ext = request.extensions.get_extension_for_class(x509.OCSPNonce)
        except x509.ExtensionNotFound:
            nonce: bytes | None = None
        else:
            nonce = nonce_ext.value.nonce
        return await self._answer(
            issuer_id,
            algorithm,
            (request.issuer_name_hash, request.issuer_key_hash),
            request.serial_number,
            nonce,
        )

    async def respond_serial(self, issuer_id: str, serial: int) -> Signed | bytes:
        """The convenience form: a CertID built from the issuer's CA with SHA-1 (RFC 5019)."""
        # SHA-1 here only names the issuer in the CertID, as RFC 5019 requires; it signs nothing.
        return await self._answer(issuer_id, hashes.SHA1(), None, serial, None)  # noqa: S303

    async def _answer(
        self,
        issuer_id: str,
        algorithm: hashes.HashAlgorithm,
        cert_id_hashes: tuple[bytes, bytes] | None,
        serial: int,
        nonce: bytes | None,
    ) -> Signed | bytes:
        snapshot = await self._snapshot(issuer_id)
        if snapshot is None:
            return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        try:
            responder = await self._responder(snapshot)
        except Exception:  # noqa: BLE001 - the issuer failed to certify a responder; retry later
            _log.exception("no OCSP responder for issuer %s", issuer_id)
            return unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
        ca_hashes = responder.ca_hashes(algorithm)
        # The responder actually used, not the snapshot's (it may have just been created).
        stamp = (responder.stamp, snapshot.revocations, snapshot.last_revocation)
        if cert_id_hashes is None:
            cert_id_hashes = ca_hashes
        now = utcnow().replace(microsecond=0)
        key = (issuer_id, algorithm.name, serial)
        if cert_id_hashes != ca_hashes:
            status: tuple[ocsp.OCSPCertStatus, datetime | None, x509.ReasonFlags | None] = (
                ocsp.OCSPCertStatus.UNKNOWN,
                None,
                None,
            )
        else:
            if nonce is None:
                cached = self._cache.get(key)
                if (
                    cached is not None
                    and cached.stamp == stamp
                    and (now - cached.stored_at).total_seconds() < CACHE_SECONDS
                ):
                    return Signed(cached.der, cached.next_update)
            status = await self._status(issuer_id, serial)
        next_update = now + RESPONSE_VALIDITY
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=cert_id_hashes[0],
            issuer_key_hash=cert_id_hashes[1],
            serial_number=serial,
            algorithm=algorithm,
            cert_status=status[0],
            this_update=now,
            next_update=next_update,
            revocation_time=status[1],
            revocation_reason=status[2],
        )
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        der = (
            builder.responder_id(ocsp.OCSPResponderEncoding.HASH, responder.certificate)
            .certificates([responder.certificate])
            .sign(responder.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )
        if nonce is not None:
            return Signed(der, None)
        if status[0] != ocsp.OCSPCertStatus.UNKNOWN:
            # "unknown" is never cached: the certificate may be recorded a moment later.
            self._cache[key] = _Cached(stamp, der, next_update, now)
            self._cache.move_to_end(key)
            while len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return Signed(der, next_update)

    async def _snapshot(self, issuer_id: str) -> _Snapshot | None:
        """The issuer, its responder's dates and its revocation count, in one query."""
        revocations = (
            select(func.count(CertificateRevocation.id))
            .where(CertificateRevocation.issuer_id == issuer_id)
            .scalar_subquery()
        )
        last = (
            select(func.max(CertificateRevocation.revoked_at))
            .where(CertificateRevocation.issuer_id == issuer_id)
            .scalar_subquery()
        )
        query = (
            select(
                ConnectorInstance,
                OcspResponder.created_at,
                OcspResponder.not_after,
                revocations,
                last,
            )
            .outerjoin(OcspResponder, OcspResponder.issuer_id == ConnectorInstance.id)
            .where(ConnectorInstance.id == issuer_id)
        )
        async with self.runtime.sessions() as session:
            row = (await session.execute(query)).first()
        if row is None:
            return None
        issuer = row[0]
        if issuer.family != "issuer" or not issuer.enabled or not self._capable(issuer):
            return None
        return _Snapshot(issuer, row[1], row[2], int(row[3] or 0), row[4])

    def _capable(self, row: ConnectorInstance) -> bool:
        try:
            spec = self.runtime.connectors.registry.get(row.family, row.kind)
        except Exception:  # noqa: BLE001 - kind not installed
            return False
        return getattr(spec.cls, "capabilities", frozenset()) >= _REQUIRED

    async def _status(
        self, issuer_id: str, serial: int
    ) -> tuple[ocsp.OCSPCertStatus, datetime | None, x509.ReasonFlags | None]:
        serial_hex = format(serial, "x")
        async with self.runtime.sessions() as session:
            revoked = (
                await session.execute(
                    select(CertificateRevocation.revoked_at, CertificateRevocation.reason).where(
                        CertificateRevocation.issuer_id == issuer_id,
                        CertificateRevocation.serial_number == serial_hex,
                    )
                )
            ).first()
            if revoked is not None:
                reason = _REASONS.get(revoked.reason, x509.ReasonFlags.unspecified)
                return (
                    ocsp.OCSPCertStatus.REVOKED,
                    revoked.revoked_at.replace(microsecond=0),
                    reason,
                )
            issued = await session.scalar(
                select(CertificateVersion.id)
                .join(
                    ManagedCertificate, ManagedCertificate.id == CertificateVersion.certificate_id
                )
                .where(
                    CertificateVersion.serial_number == serial_hex,
                    ManagedCertificate.issuer_id == issuer_id,
                )
                .limit(1)
            )
        if issued is not None:
            return ocsp.OCSPCertStatus.GOOD, None, None
        return ocsp.OCSPCertStatus.UNKNOWN, None, None

    # -- the delegated responder ------------------------------------------------------------

    def _due(self, not_after: datetime | None) -> bool:
        grace = timedelta(seconds=self.runtime.settings.ocsp_rotation_grace_seconds)
        return not_after is None or not_after - utcnow() <= grace

    async def _responder(self, snapshot: _Snapshot) -> _Responder:
        """The issuer's responder, loaded, created or rotated as needed."""
        issuer_id = snapshot.issuer.id
        stamp = (snapshot.issuer.updated_at, snapshot.responder_created_at)
        loaded = self._responders.get(issuer_id)
        if (
            loaded is not None
            and loaded.stamp == stamp
            and not self._due(snapshot.responder_not_after)
        ):
            return loaded
        lock = self._locks.setdefault(issuer_id, asyncio.Lock())
        async with lock:
            return await self._load_or_renew(snapshot.issuer)

    async def _load_or_renew(self, issuer_row: ConnectorInstance) -> _Responder:
        issuer = self.runtime.connectors.instance(issuer_row)
        assert isinstance(issuer, Issuer)
        ca = x509.load_pem_x509_certificate((await issuer.ca_certificates())[0].encode())
        async with self.runtime.sessions() as session:
            stored = await session.get(OcspResponder, issuer_row.id)
        if stored is not None:
            loaded = self._responders.get(issuer_row.id)
            if loaded is not None and loaded.stamp == (issuer_row.updated_at, stored.created_at):
                if not self._due(stored.not_after):
                    return loaded  # another task of this process just renewed it
            elif not self._due(stored.not_after):
                responder = await self._open(issuer_row, stored, ca)
                if responder is not None:
                    return responder
        return await self._issue(issuer, issuer_row, ca, stored)

    async def _open(
        self, issuer_row: ConnectorInstance, stored: OcspResponder, ca: x509.Certificate
    ) -> _Responder | None:
        """Decrypt a stored responder; None when it was not issued by the issuer's current CA."""
        certificate = x509.load_pem_x509_certificate(stored.certificate_pem.encode())
        try:
            certificate.verify_directly_issued_by(ca)
        except Exception:  # noqa: BLE001 - not signed by this CA (e.g. the CA was replaced)
            return None
        key_pem = await asyncio.to_thread(
            self.runtime.box.decrypt, stored.private_key_enc, responder_context(issuer_row.id)
        )
        key = serialization.load_pem_private_key(key_pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        responder = _Responder((issuer_row.updated_at, stored.created_at), certificate, key, ca, {})
        self._responders[issuer_row.id] = responder
        return responder

    async def _issue(
        self,
        issuer: Issuer[Any],
        issuer_row: ConnectorInstance,
        ca: x509.Certificate,
        previous: OcspResponder | None,
    ) -> _Responder:
        """Have the issuer certify a fresh P-256 key and store it (insert, or replace)."""
        settings = self.runtime.settings
        key = ec.generate_private_key(ec.SECP256R1())
        now = utcnow()
        common_name = f"OCSP responder for {issuer_row.name}"[:64]
        outcome = await issuer.issue(
            IssueRequest(
                csr_pem=build_csr(key, common_name, SubjectAltNames()),
                common_name=common_name,
                sans=SubjectAltNames(),
                validity_seconds=settings.ocsp_responder_validity_seconds,
                ekus=(ExtendedKeyUsage.OCSP_SIGNING.value,),
                ocsp_no_check=True,
                idempotency_key=f"ocsp-responder:{issuer_row.id}:{now.isoformat()}",
            )
        )
        if isinstance(outcome, PendingIssuance):
            raise RuntimeError("the issuer queued the responder certificate instead of signing it")
        certificate = x509.load_pem_x509_certificate(outcome.certificate_pem.encode())
        sealed = await asyncio.to_thread(
            self.runtime.box.encrypt,
            private_key_pem(key).encode(),
            responder_context(issuer_row.id),
        )
        values = {
            "certificate_pem": outcome.certificate_pem,
            "private_key_enc": sealed,
            "not_after": certificate.not_valid_after_utc,
            "created_at": now,
        }
        async with self.runtime.sessions() as session:
            try:
                if previous is None:
                    session.add(OcspResponder(issuer_id=issuer_row.id, **values))
                    await session.flush()
                    won = True
                else:
                    result = await session.execute(
                        update(OcspResponder)
                        .where(
                            OcspResponder.issuer_id == issuer_row.id,
                            OcspResponder.created_at == previous.created_at,
                        )
                        .values(**values)
                        .execution_options(synchronize_session=False)
                    )
                    won = getattr(result, "rowcount", 0) == 1
                await session.commit()
            except IntegrityError:
                won = False
        if not won:
            # Another process stored a responder first: use that one (ours is discarded).
            async with self.runtime.sessions() as session:
                stored = await session.get(OcspResponder, issuer_row.id)
            if stored is not None:
                opened = await self._open(issuer_row, stored, ca)
                if opened is not None:
                    return opened
            raise RuntimeError("a concurrently stored OCSP responder could not be used")
        _log.info(
            "issuer %s: new OCSP responder certificate %x valid until %s",
            issuer_row.id,
            certificate.serial_number,
            certificate.not_valid_after_utc.isoformat(),
        )
        responder = _Responder((issuer_row.updated_at, now), certificate, key, ca, {})
        self._responders[issuer_row.id] = responder
        return responder
