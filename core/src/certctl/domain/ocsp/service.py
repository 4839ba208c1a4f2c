"""Answering RFC 6960 OCSP requests for the issuers whose revocations the core records.

Each issuer that declares :attr:`IssuerCapability.OCSP_SIGNING` and
:attr:`IssuerCapability.CA_CERTIFICATES` gets a *delegated responder* (RFC 6960 §4.2.2.2): the
core generates an ECDSA P-256 key, the issuer signs a certificate for it with id-kp-OCSPSigning
and id-pkix-ocsp-nocheck, and the pair is stored in ``ocsp_responders`` (key sealed with the
context ``ocsp-responder:<issuer_id>``). A responder within ``CERTCTL_OCSP_ROTATION_GRACE`` of
expiry is replaced on its next use; an optimistic ``UPDATE … WHERE created_at = <old>`` lets one
process win a concurrent rotation and the others adopt its result.

An issuer whose issuing CA keeps its key in a PKCS#11 token gets no delegated responder: the
answers are signed by the issuing CA itself (RFC 6960 §4.2.2.2, first option), through the
token, so no responder key exists outside it. Cached answers keep the token's load to one
signature per serial and :data:`CACHE_SECONDS`; answers to nonces are signed each time.

Status per serial: **revoked** when ``certificate_revocations`` lists it for the issuer,
**good** when a stored certificate version of a certificate of this issuer carries it, else
**unknown** (also when the request's issuer name or key hash is not this issuer's CA).

Status comes from memory: each issuer's revocations are held in a
:class:`~certctl.domain.ocsp.index.RevocationIndex` and serials found issued are remembered for
:data:`CACHE_SECONDS`. One small query per issuer — the issuer, its responder and the number of
its revocations — is repeated at most every ``CERTCTL_OCSP_REFRESH_MS`` (default 500 ms) and
pulls in whatever changed. Revocations made by this process reach the index at once
(:func:`note_revocations`); those made by another process sharing the database are answered
within the refresh interval (plus the time of one query). A serial missing from memory is looked
up in the database, so a certificate issued elsewhere a moment ago is answered "good".

Signed good/revoked answers to requests without a nonce are cached per (issuer, CertID hash
algorithm, serial) for at most :data:`CACHE_SECONDS` and re-signed as soon as the serial's
status or the responder changes. Requests with a nonce are signed each time (the nonce is
echoed). "unknown" is never cached.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable
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
    IntermediateCa,
    ManagedCertificate,
    OcspResponder,
)
from certctl.domain.ocsp.index import RevocationIndex
from certctl.lib.keys import build_csr, private_key_pem
from certctl.lib.ratelimit import LocalLimiter
from certctl_sdk import CaSigner, ConnectorError, Issuer, IssueRequest, PendingIssuance, signing
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
    "note_revocations",
    "responder_context",
    "responder_service",
    "rotate_ocsp_responders",
    "unsuccessful",
]

_log = logging.getLogger("certctl.ocsp")

RESPONSE_VALIDITY = timedelta(hours=1)
"""nextUpdate - thisUpdate of every response."""
CACHE_SECONDS = 300
"""A cached response is at most this old, so it always has 55 minutes of validity left."""
_CACHE_ENTRIES = 100_000
"""Signed responses kept (least recently used dropped first); as many issued serials are kept."""

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


def _ca_digest(ca: x509.Certificate) -> hashes.SHA256 | hashes.SHA384:
    """The hash a token CA signs answers with: matched to its curve (SHA-256 for RSA)."""
    key = ca.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


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
    """What the periodic query tells about an issuer (None in :attr:`issuer` once refused)."""

    issuer: ConnectorInstance
    responder_created_at: datetime | None
    responder_not_after: datetime | None
    revocations: int


class _IssuerState:
    """One issuer as this process last saw it, and when (monotonic seconds)."""

    __slots__ = ("checked", "index", "lock", "refreshing", "snapshot")

    def __init__(self, issuer_id: str) -> None:
        self.snapshot: _Snapshot | None = None
        self.index = RevocationIndex(issuer_id)
        self.checked = float("-inf")
        self.refreshing = False
        self.lock = asyncio.Lock()


class _Responder(NamedTuple):
    stamp: tuple[Any, ...]
    """(issuer updated_at, responder created_at): the in-memory copy is used while it matches."""
    certificate: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes | None
    ca: x509.Certificate
    digests: dict[str, tuple[bytes, bytes]]
    """CertID hash algorithm name → (issuerNameHash, issuerKeyHash) of the CA."""
    signer: CaSigner | None = None
    """The issuing CA's token key: the CA answers itself (``certificate`` is the CA's)."""

    def ca_hashes(self, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
        found = self.digests.get(algorithm.name)
        if found is None:
            found = (_name_hash(self.ca, algorithm), issuer_key_hash(self.ca, algorithm))
            self.digests[algorithm.name] = found
        return found


_Status = tuple[ocsp.OCSPCertStatus, datetime | None, x509.ReasonFlags | None]


class _Cached(NamedTuple):
    stamp: tuple[Any, ...]
    """(responder stamp, status): the signed answer is reused while both are unchanged."""
    der: bytes
    next_update: datetime
    stored_at: datetime


_SERVICES: weakref.WeakKeyDictionary[Runtime, OcspResponderService] = weakref.WeakKeyDictionary()


def responder_service(runtime: Runtime) -> OcspResponderService:
    """The runtime's responder service (one per runtime: its caches serve every request)."""
    service = _SERVICES.get(runtime)
    if service is None:
        service = _SERVICES[runtime] = OcspResponderService(runtime)
    return service


def note_revocations(runtime: Runtime, rows: Iterable[dict[str, Any]]) -> None:
    """Tell this process's responder about committed revocations, so it answers at once.

    ``rows`` are ``certificate_revocations`` values (issuer_id, serial_number, revoked_at,
    reason). Other processes see them within ``CERTCTL_OCSP_REFRESH_MS``.
    """
    service = _SERVICES.get(runtime)
    if service is not None:
        service.note_revocations(rows)


class OcspResponderService:
    """Per-process responder state: issuers, revocation indexes, signed answers, locks.

    Build it through :func:`responder_service`, so revocations of this process reach it.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Per process on purpose: a database round trip per request would undo the fast path.
        self.limiter = LocalLimiter.per_minute(runtime.settings.ocsp_rate_limit_per_ip_min)
        self.refresh_seconds = runtime.settings.ocsp_refresh_ms / 1000
        self._states: dict[str, _IssuerState] = {}
        self._issued: OrderedDict[tuple[str, str], float] = OrderedDict()
        """(issuer, serial hex) → when the database last showed it issued (monotonic)."""
        self._responders: dict[str, _Responder] = {}
        self._cache: OrderedDict[tuple[str, str, int], _Cached] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def note_revocations(self, rows: Iterable[dict[str, Any]]) -> None:
        """See :func:`note_revocations`."""
        for row in rows:
            state = self._states.get(row["issuer_id"])
            if state is not None and state.index.loaded:
                state.index.add([(row["serial_number"], row["revoked_at"], row["reason"])])

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
        state = await self._state(issuer_id)
        snapshot = state.snapshot
        if snapshot is None:
            return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        try:
            responder = await self._responder(snapshot)
        except Exception:  # noqa: BLE001 - the issuer failed to certify a responder; retry later
            _log.exception("no OCSP responder for issuer %s", issuer_id)
            return unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
        ca_hashes = responder.ca_hashes(algorithm)
        if cert_id_hashes is None:
            cert_id_hashes = ca_hashes
        if cert_id_hashes != ca_hashes:
            status: _Status = (ocsp.OCSPCertStatus.UNKNOWN, None, None)
        else:
            status = await self._status(state, serial)
        now = utcnow().replace(microsecond=0)
        key = (issuer_id, algorithm.name, serial)
        # The responder actually used, not the snapshot's (it may have just been created).
        stamp = (responder.stamp, status)
        if nonce is None and status[0] != ocsp.OCSPCertStatus.UNKNOWN:
            cached = self._cache.get(key)
            if (
                cached is not None
                and cached.stamp == stamp
                and (now - cached.stored_at).total_seconds() < CACHE_SECONDS
            ):
                return Signed(cached.der, cached.next_update)
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
        if responder.signer is not None:
            try:
                signed = await signing.sign_ocsp_response(
                    builder,
                    responder.signer,
                    _ca_digest(responder.ca),
                    responder=responder.certificate,
                    certificates=(),
                )
            except ConnectorError as exc:
                _log.error("OCSP for issuer %s: the token did not sign: %s", issuer_id, exc)
                return unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
            der = signed.public_bytes(serialization.Encoding.DER)
        else:
            assert responder.key is not None
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

    async def _state(self, issuer_id: str) -> _IssuerState:
        """The issuer's state, re-read when older than the refresh interval.

        While one request refreshes it, concurrent requests use the previous state, so a
        refresh never queues the others behind a database round trip.
        """
        state = self._states.get(issuer_id)
        if state is None:
            if len(self._states) >= _CACHE_ENTRIES:
                self._states.clear()  # only names probed at random get here
            state = self._states[issuer_id] = _IssuerState(issuer_id)
        if time.monotonic() - state.checked < self.refresh_seconds:
            return state
        if state.refreshing and state.checked > float("-inf"):
            return state
        async with state.lock:
            if time.monotonic() - state.checked < self.refresh_seconds:
                return state  # refreshed while this request waited for the first load
            state.refreshing = True
            try:
                await self.refresh(state)
            finally:
                state.refreshing = False
        return state

    async def refresh(self, state: _IssuerState) -> None:
        """Re-read the issuer, its responder and its revocation count; catch up the index."""
        issuer_id = state.index.issuer_id
        started = time.monotonic()
        revocations = (
            select(func.count())
            .select_from(CertificateRevocation)
            .where(CertificateRevocation.issuer_id == issuer_id)
            .scalar_subquery()
        )
        query = (
            select(
                ConnectorInstance, OcspResponder.created_at, OcspResponder.not_after, revocations
            )
            .outerjoin(OcspResponder, OcspResponder.issuer_id == ConnectorInstance.id)
            .where(ConnectorInstance.id == issuer_id)
        )
        async with self.runtime.sessions() as session:
            row = (await session.execute(query)).first()
            issuer = row[0] if row is not None else None
            if (
                row is None
                or issuer is None
                or issuer.family != "issuer"
                or not issuer.enabled
                or not self._capable(issuer)
            ):
                state.snapshot = None
            else:
                count = int(row[3] or 0)
                await state.index.sync(session, count)
                state.snapshot = _Snapshot(issuer, row[1], row[2], count)
        state.checked = started

    async def refresh_all(self) -> int:
        """Refresh every issuer this process has answered for now (tests, or after a restore)."""
        for state in list(self._states.values()):
            await self.refresh(state)
        return len(self._states)

    def _capable(self, row: ConnectorInstance) -> bool:
        try:
            spec = self.runtime.connectors.registry.get(row.family, row.kind)
        except Exception:  # noqa: BLE001 - kind not installed
            return False
        return getattr(spec.cls, "capabilities", frozenset()) >= _REQUIRED

    async def _status(self, state: _IssuerState, serial: int) -> _Status:
        serial_hex = format(serial, "x")
        revoked = state.index.get(serial_hex)
        if revoked is not None:
            reason = _REASONS.get(revoked.reason, x509.ReasonFlags.unspecified)
            return ocsp.OCSPCertStatus.REVOKED, revoked.revoked_at, reason
        key = (state.index.issuer_id, serial_hex)
        seen = self._issued.get(key)
        if seen is not None and time.monotonic() - seen < CACHE_SECONDS:
            return ocsp.OCSPCertStatus.GOOD, None, None
        return await self._lookup(state, serial_hex)

    async def _lookup(self, state: _IssuerState, serial_hex: str) -> _Status:
        """A serial not in memory: ask the database (it may be newer than the index)."""
        issuer_id = state.index.issuer_id
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
                state.index.add([(serial_hex, revoked.revoked_at, revoked.reason)])
                return await self._status(state, int(serial_hex, 16))
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
        if issued is None:
            return ocsp.OCSPCertStatus.UNKNOWN, None, None
        key = (issuer_id, serial_hex)
        self._issued[key] = time.monotonic()
        self._issued.move_to_end(key)
        while len(self._issued) > _CACHE_ENTRIES:
            self._issued.popitem(last=False)
        return ocsp.OCSPCertStatus.GOOD, None, None

    # -- the delegated responder ------------------------------------------------------------

    def _due(self, not_after: datetime | None) -> bool:
        grace = timedelta(seconds=self.runtime.settings.ocsp_rotation_grace_seconds)
        return not_after is None or not_after - utcnow() <= grace

    async def _responder(self, snapshot: _Snapshot) -> _Responder:
        """The issuer's responder, loaded, created or rotated as needed."""
        issuer_id = snapshot.issuer.id
        stamp = (snapshot.issuer.updated_at, snapshot.responder_created_at)
        loaded = self._responders.get(issuer_id)
        if loaded is not None and loaded.signer is not None:
            if loaded.stamp[0] == snapshot.issuer.updated_at:
                return loaded  # the token CA answers itself: nothing to rotate
        elif (
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
        direct = await self._token_ca(issuer_row, ca)
        if direct is not None:
            return direct
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

    async def _token_ca(
        self, issuer_row: ConnectorInstance, ca: x509.Certificate
    ) -> _Responder | None:
        """The issuing CA as its own responder, when its key is in a PKCS#11 token."""
        async with self.runtime.sessions() as session:
            tree_ca = await session.scalar(
                select(IntermediateCa).where(
                    IntermediateCa.issuer_id == issuer_row.id, IntermediateCa.issuing
                )
            )
        if tree_ca is None or tree_ca.key_store != "pkcs11":
            return None
        if x509.load_pem_x509_certificate(tree_ca.certificate_pem.encode()) != ca:
            return None  # the issuer signs with another CA than the tree's choice
        signer = await self.runtime.key_stores.lend(tree_ca)
        assert not isinstance(signer, str)
        responder = _Responder((issuer_row.updated_at, None), ca, None, ca, {}, signer)
        self._responders[issuer_row.id] = responder
        return responder

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

    async def rotate_due(self) -> int:
        """Replace every stored responder within the rotation grace of expiry; the number."""
        async with self.runtime.sessions() as session:
            rows = list(
                await session.execute(
                    select(ConnectorInstance, OcspResponder.not_after).join(
                        OcspResponder, OcspResponder.issuer_id == ConnectorInstance.id
                    )
                )
            )
        rotated = 0
        for issuer_row, not_after in rows:
            if not issuer_row.enabled or not self._capable(issuer_row) or not self._due(not_after):
                continue
            try:
                lock = self._locks.setdefault(issuer_row.id, asyncio.Lock())
                async with lock:
                    await self._load_or_renew(issuer_row)
                rotated += 1
            except Exception:  # noqa: BLE001 - one failing issuer does not stop the others
                _log.exception("rotating the OCSP responder of issuer %s failed", issuer_row.id)
        return rotated


async def rotate_ocsp_responders(runtime: Runtime) -> int:
    """Replace OCSP responder certificates within ``CERTCTL_OCSP_ROTATION_GRACE`` of expiry.

    Periodic job (suggested every hour). Answering also rotates lazily, so this only keeps the
    first request after the grace starts from paying for a new certificate. Safe on several
    replicas at once: the optimistic ``UPDATE … WHERE created_at = <old>`` lets one process
    store its certificate and the others adopt it. Returns the number of responders rotated.
    """
    return await responder_service(runtime).rotate_due()
