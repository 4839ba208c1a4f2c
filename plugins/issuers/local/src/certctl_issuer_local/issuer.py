"""The Local CA: signs CSRs in-process with a key certctl holds.

Two ways to get a CA:

* **self-signed**: a root generated on first use and persisted in the connector's state store, so
  restarts and other replicas sign with the same root;
* **sub-ca**: a CA certificate and private key supplied in the configuration (an intermediate
  under an enterprise root, ADCS, or a root of your own).

Either CA can be the root of a hierarchy the core keeps (``ConnectorContext.authority``):
:meth:`LocalIssuer.sign_subordinate` signs its intermediates, and when the core names one of them
as the issuing CA, leaves, CRLs and OCSP responder certificates are signed with that CA's key.

Signing is a few tens of microseconds, so it runs on the event loop; only RSA key generation for a
new root (seconds for 4096 bits) and CRL building (large lists) go to a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    CRLEntryExtensionOID,
    ExtendedKeyUsageOID,
    NameOID,
)

from certctl_issuer_local.config import LocalIssuerConfig, parse_ca_material
from certctl_sdk import (
    CaSigner,
    CheckResult,
    ConfigurationError,
    ConnectorContext,
    ConnectorError,
    CrlRequest,
    ExtendedKeyUsage,
    IssuedCertificate,
    Issuer,
    IssuerCapability,
    IssueRequest,
    KeyType,
    RejectedError,
    RevocationReason,
    RevokeRequest,
    SigningAuthority,
    SubordinateRequest,
    TransientError,
    signing,
)
from certctl_sdk.pem import (
    PemError,
    fingerprint_sha256,
    load_certificate,
    load_csr,
    load_private_key,
    serial_hex,
)

__all__ = ["ROOT_STATE_KEY", "LocalIssuer"]

ROOT_STATE_KEY = "self-signed-root"
"""State-store key of the generated root (JSON: key and certificate PEM)."""

BACKDATE = timedelta(minutes=1)
"""Leaves start a minute in the past so relying parties with a slightly slow clock accept them."""

SigningKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

_Digest = hashes.SHA256 | hashes.SHA384 | hashes.SHA512

_LEAF_KEY_TYPES = frozenset(k.value for k in KeyType)
"""Keys a leaf may carry: the names certctl's profiles can ask for."""

_EKU_OIDS: dict[ExtendedKeyUsage, x509.ObjectIdentifier] = {
    ExtendedKeyUsage.SERVER_AUTH: ExtendedKeyUsageOID.SERVER_AUTH,
    ExtendedKeyUsage.CLIENT_AUTH: ExtendedKeyUsageOID.CLIENT_AUTH,
    ExtendedKeyUsage.CODE_SIGNING: ExtendedKeyUsageOID.CODE_SIGNING,
    ExtendedKeyUsage.EMAIL_PROTECTION: ExtendedKeyUsageOID.EMAIL_PROTECTION,
    ExtendedKeyUsage.TIME_STAMPING: ExtendedKeyUsageOID.TIME_STAMPING,
    ExtendedKeyUsage.OCSP_SIGNING: ExtendedKeyUsageOID.OCSP_SIGNING,
}

_REASON_FLAGS: dict[RevocationReason, x509.ReasonFlags] = {
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
    RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
    RevocationReason.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
    RevocationReason.AA_COMPROMISE: x509.ReasonFlags.aa_compromise,
}
"""CRL reason codes; ``unspecified`` is left out because RFC 5280 §5.3.1 says to omit it."""


class _StoredRoot(msgspec.Struct, frozen=True, kw_only=True):
    """The generated root as kept in the state store."""

    version: int = 1
    key_pem: str
    certificate_pem: str


@dataclass(frozen=True, slots=True)
class _Authority:
    """A loaded, checked CA, cached on the issuer instance."""

    certificate: x509.Certificate
    key: SigningKey | None
    """The CA's private key, or None when it stays in a token (``signer``)."""
    chain: tuple[x509.Certificate, ...]
    pems: tuple[str, ...]
    """The issuing CA then the configured chain, as PEM: the chain of every issued certificate."""
    hash: _Digest | None
    authority_key_id: x509.AuthorityKeyIdentifier
    public_key_der: bytes
    not_after: datetime
    """The earliest expiry along the chain: no leaf may outlive any certificate above it."""
    source: str
    serial_secret: bytes
    """Keys the serials of replayable orders (see :func:`_replayable`)."""
    issuing: bool = True
    """False for a retiring tree CA: it signs CRLs and OCSP responders, no new certificates."""
    signer: CaSigner | None = None
    """A tree CA whose key never leaves its token: everything is signed through this."""
    deterministic: bool = True
    """Whether the same order signs to the same bytes (replayed orders; see :func:`_replayable`).
    A token's ECDSA draws a fresh nonce per signature, so such a CA signs every order afresh."""

    @property
    def basic_constraints(self) -> x509.BasicConstraints:
        return self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value

    @property
    def key_usage(self) -> x509.KeyUsage:
        return self.certificate.extensions.get_extension_for_class(x509.KeyUsage).value


class LocalIssuer(Issuer[LocalIssuerConfig]):
    """Issue certificates from a CA whose key certctl holds (self-signed root or sub-CA).

    Revocation state belongs to the core: :meth:`revoke` only checks the certificate is ours, and
    :meth:`sign_crl` signs whatever list the core hands over.
    """

    kind: ClassVar[str] = "local"
    display_name: ClassVar[str] = "Local CA"
    description: ClassVar[str] = (
        "An in-process certificate authority: a self-signed root generated by certctl, or a "
        "sub-CA from a certificate and key you supply. Signs CRLs and OCSP responder certificates."
    )
    Config: ClassVar[type[LocalIssuerConfig]] = LocalIssuerConfig
    capabilities: ClassVar[frozenset[IssuerCapability]] = frozenset(
        {
            IssuerCapability.REVOKE,
            IssuerCapability.CRL_SIGNING,
            IssuerCapability.OCSP_SIGNING,
            IssuerCapability.CA_CERTIFICATES,
            IssuerCapability.SUBORDINATE_CA,
        }
    )

    def __init__(self, config: LocalIssuerConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self._authority: _Authority | None = None
        self._signing: _Authority | None = None
        self._lock = asyncio.Lock()

    # -- the CA -------------------------------------------------------------------------------

    async def _ca(self) -> _Authority:
        """The CA that signs: the tree CA the core chose, else the issuer's own CA.

        Cached per instance: the core changes the connector row when it picks another CA or
        retires one, which gives the issuer a fresh instance.
        """
        if self._signing is not None:
            return self._signing
        chosen = await self.context.authority.current() if self.context.authority else None
        own = await self._own_ca()
        signing = own if chosen is None else await _authority_from_lent(chosen, own)
        self._check_current(signing)
        self._signing = signing
        return signing

    async def _own_ca(self) -> _Authority:
        """The issuer's own CA (root of any hierarchy), loaded or generated once per instance."""
        if self._authority is not None:
            return self._authority
        async with self._lock:
            if self._authority is None:
                if self.config.mode == "sub-ca":
                    authority = await self._load_supplied()
                else:
                    authority = await self._load_or_generate_root()
                self._check_current(authority)
                self._authority = authority
            return self._authority

    def _check_current(self, ca: _Authority) -> None:
        if ca.not_after <= self.context.clock():
            raise ConfigurationError(
                f"the CA chain expired on {ca.not_after.isoformat()}; configure a new CA"
            )

    async def _load_supplied(self) -> _Authority:
        certificate, chain = parse_ca_material(self.config)
        assert self.config.ca_private_key is not None  # the config refuses sub-ca without it
        key_pem = await self.context.secrets.resolve(self.config.ca_private_key)
        try:
            key = load_private_key(key_pem)
        except PemError as exc:
            raise ConfigurationError(
                f"ca_private_key: {exc} (it must be an unencrypted PEM private key)"
            ) from None
        return _authority(certificate, _signing_key(key, "ca_private_key"), chain, "supplied")

    async def _load_or_generate_root(self) -> _Authority:
        """Load the persisted root, or generate and persist one.

        The state value holds the root's private key in clear PEM: the core's state store is
        what encrypts it at rest (bound to this connector and key), as it does for every
        connector's state. Replicas racing to create the root use the store's atomic ``add``:
        exactly one root is stored and every loser adopts it, so no certificate ever chains to a
        discarded root. Within one process the instance lock makes generation happen once.
        """
        stored = await self.context.state.get(ROOT_STATE_KEY)
        if stored is None:
            blob = await self._generate_root()
            if await self.context.state.add(ROOT_STATE_KEY, blob):
                stored = blob
            else:
                stored = await self.context.state.get(ROOT_STATE_KEY)
                if stored is None:
                    raise TransientError("the CA root was created and removed concurrently")
        return _authority_from_state(stored)

    async def _generate_root(self) -> bytes:
        key_type = self.config.ca_key_type
        if key_type.value.startswith("rsa"):
            key = await asyncio.to_thread(_generate_key, key_type)
        else:
            key = _generate_key(key_type)
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, self.config.common_name)]
        if self.config.organization:
            attributes.insert(
                0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.config.organization)
            )
        name = x509.Name(attributes)
        not_before = self.context.clock() - BACKDATE
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(_random_serial(self.config.serial_bits))
            .not_valid_before(not_before)
            .not_valid_after(not_before + timedelta(days=self.config.ca_validity_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, _hash_for(key))
        )
        self.context.logger.info(
            "generated a %s root CA %r valid until %s",
            key_type.value,
            certificate.subject.rfc4514_string(),
            certificate.not_valid_after_utc.isoformat(),
        )
        stored = _StoredRoot(
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode("ascii"),
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        )
        return msgspec.json.encode(stored)

    # -- Issuer API ---------------------------------------------------------------------------

    async def check(self) -> CheckResult:
        """Load (or generate) the CA and report its subject and expiry."""
        try:
            ca = await self._ca()
        except ConnectorError as exc:
            return CheckResult(ok=False, message=exc.message)
        now = self.context.clock()
        subject = ca.certificate.subject.rfc4514_string()
        message = f"{ca.source} CA {subject} valid until {ca.not_after.isoformat()}"
        if ca.not_after - now < timedelta(days=self.config.max_validity_days):
            message += "; leaves issued now are cut short at that date"
        details = {
            "mode": self.config.mode,
            "subject": subject,
            "not_after": ca.not_after.isoformat(),
            "serial": serial_hex(ca.certificate),
            "fingerprint_sha256": fingerprint_sha256(ca.certificate),
            "key_type": _describe_key(ca.certificate.public_key()),
            "chain_length": str(len(ca.pems)),
        }
        return CheckResult(ok=True, message=message, details=details)

    async def issue(self, request: IssueRequest) -> IssuedCertificate:
        """Sign the CSR with the names, usages and extensions the core decided.

        The CSR only contributes its public key (after its signature is checked): subject, SANs
        and EKUs come from the request, which the core has already checked against policy.
        """
        ca = await self._ca()
        if not ca.issuing and not request.ocsp_no_check:
            raise RejectedError(
                f"the issuing CA {ca.certificate.subject.rfc4514_string()} is retiring and "
                "issues no new certificates; choose another issuing CA"
            )
        try:
            csr = load_csr(request.csr_pem)
        except PemError as exc:
            raise RejectedError(f"invalid certificate request: {exc}") from None
        public_key = csr.public_key()
        if _describe_key(public_key) not in _LEAF_KEY_TYPES:
            raise RejectedError(
                f"unsupported key in the certificate request ({_describe_key(public_key)}); "
                f"use one of {', '.join(sorted(_LEAF_KEY_TYPES))}"
            )
        _check_name_constraints(ca, request.sans.dns)
        if _spki(public_key) == ca.public_key_der:
            raise RejectedError("the certificate request uses the CA's own key")
        if request.is_ca and ca.basic_constraints.path_length == 0:
            raise RejectedError(
                "the issuing CA has pathLenConstraint 0 and cannot issue CA certificates"
            )

        now = self.context.clock()
        derived = ca.deterministic and _replayable(request, now)
        start = request.requested_at if derived and request.requested_at else now
        not_before, not_after = self._validity(ca, request, start)
        serial = (
            _derived_serial(ca, request, self.config.serial_bits)
            if derived
            else _random_serial(self.config.serial_bits)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_subject(request.common_name))
            .issuer_name(ca.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
        )
        for extension, critical in _leaf_extensions(ca, request, public_key):
            builder = builder.add_extension(extension, critical=critical)
        certificate = await _sign_deterministically(builder, ca)
        return IssuedCertificate(
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            chain_pem=ca.pems,
            serial=serial_hex(certificate),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            fingerprint_sha256=fingerprint_sha256(certificate),
        )

    def _validity(
        self, ca: _Authority, request: IssueRequest, now: datetime
    ) -> tuple[datetime, datetime]:
        if request.validity_seconds < 0:
            raise RejectedError("validity_seconds must not be negative")
        requested = request.validity_seconds or self.config.default_validity_days * 86400
        lifetime = timedelta(seconds=min(requested, self.config.max_validity_days * 86400))
        self._check_current(ca)
        not_after = now + lifetime
        if not_after > ca.not_after:
            self.context.logger.warning(
                "validity of %s cut to the CA's expiry %s",
                request.common_name or "certificate",
                ca.not_after.isoformat(),
            )
            not_after = ca.not_after
        # Never before the CA itself: a CA whose clock ran ahead may start slightly in the future.
        not_before = max(now - BACKDATE, ca.certificate.not_valid_before_utc)
        if not_after <= not_before:
            raise RejectedError(
                f"the CA is valid only from {not_before.isoformat()}: "
                f"{lifetime.total_seconds():.0f} seconds of validity would end before that"
            )
        return not_before, not_after

    async def revoke(self, request: RevokeRequest) -> None:
        """Check the certificate is one of ours; the core records the revocation itself.

        Nothing is sent anywhere: this CA's revocation status is the core's database, published
        through :meth:`sign_crl` and the core's OCSP responder.
        """
        ca = await self._ca()
        try:
            certificate = load_certificate(request.certificate_pem)
        except PemError as exc:
            raise RejectedError(f"certificate_pem: {exc}") from None
        if _parse_serial(request.serial) != certificate.serial_number:
            raise RejectedError(
                f"serial {request.serial} does not match the certificate "
                f"({serial_hex(certificate)})"
            )
        if not _issued_by(certificate, ca.certificate):
            raise RejectedError(
                f"certificate {serial_hex(certificate)} was not issued by this CA "
                f"({ca.certificate.subject.rfc4514_string()})"
            )
        self.context.logger.info(
            "certificate %s revoked (%s)", serial_hex(certificate), request.reason.name.lower()
        )

    async def sign_crl(self, request: CrlRequest) -> bytes:
        """Return a complete DER CRL over ``request.entries``, signed by the CA key."""
        ca = await self._ca()
        if not ca.key_usage.crl_sign:
            raise ConfigurationError(
                "the CA certificate's keyUsage lacks cRLSign, so it cannot sign CRLs"
            )
        if not 0 <= request.crl_number < 2**159:
            raise RejectedError("crl_number must be between 0 and 2**159 - 1 (RFC 5280 §5.2.3)")
        if request.next_update <= request.this_update:
            raise RejectedError("next_update must be later than this_update")
        # Tens of microseconds per entry: a long list is built off the event loop too.
        if ca.signer is None:
            return await asyncio.to_thread(_sign_crl, ca, request)
        builder = await asyncio.to_thread(_crl_builder, ca, request)
        crl = await signing.sign_crl(
            builder, ca.signer, _token_hash(ca), entries=len(request.entries)
        )
        return crl.public_bytes(serialization.Encoding.DER)

    async def ca_certificates(self) -> tuple[str, ...]:
        """The issuing CA, then the configured chain above it, as PEM."""
        return (await self._ca()).pems

    async def sign_subordinate(
        self, request: SubordinateRequest, parent: SigningAuthority | None
    ) -> str:
        """Sign a CA certificate under ``parent`` (None: this issuer's own CA).

        The core has applied RFC 5280's rules (path length, name constraints, validity); this
        checks only what it can see itself: the parent may sign CAs and outlives the child.
        """
        own = await self._own_ca()
        ca = own if parent is None else await _authority_from_lent(parent, own)
        self._check_current(ca)
        if ca.basic_constraints.path_length == 0:
            raise RejectedError(
                f"{ca.certificate.subject.rfc4514_string()} has pathLenConstraint 0 and cannot "
                "sign CA certificates"
            )
        if request.not_after > ca.not_after or request.not_before < (
            ca.certificate.not_valid_before_utc
        ):
            raise RejectedError("the CA certificate would not lie within its parent's validity")
        try:
            public_key = serialization.load_pem_public_key(request.public_key_pem.encode())
            subject = _ca_subject(request)
        except ValueError as exc:
            raise RejectedError(f"invalid subordinate CA request: {exc}") from None
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.certificate.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(_random_serial(self.config.serial_bits))
            .not_valid_before(request.not_before)
            .not_valid_after(request.not_after)
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=request.path_length), critical=True
            )
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
            .add_extension(ca.authority_key_id, critical=False)
        )
        if request.permitted_dns or request.excluded_dns:
            constraints = x509.NameConstraints(
                permitted_subtrees=[x509.DNSName(d) for d in request.permitted_dns] or None,
                excluded_subtrees=[x509.DNSName(d) for d in request.excluded_dns] or None,
            )
            builder = builder.add_extension(constraints, critical=True)  # RFC 5280 §4.2.1.10
        if request.ocsp_urls:
            access = [
                x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url)
                )
                for url in request.ocsp_urls
            ]
            builder = builder.add_extension(x509.AuthorityInformationAccess(access), critical=False)
        if ca.signer is not None:
            certificate = await signing.sign_certificate(builder, ca.signer, _token_hash(ca))
        else:
            assert ca.key is not None
            certificate = builder.sign(ca.key, ca.hash)
        self.context.logger.info(
            "signed CA %r under %r",
            certificate.subject.rfc4514_string(),
            ca.certificate.subject.rfc4514_string(),
        )
        return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


# -- helpers ---------------------------------------------------------------------------------


def _generate_key(key_type: KeyType) -> SigningKey:
    match key_type:
        case KeyType.ECDSA_P256:
            return ec.generate_private_key(ec.SECP256R1())
        case KeyType.ECDSA_P384:
            return ec.generate_private_key(ec.SECP384R1())
        case KeyType.RSA_2048 | KeyType.RSA_3072 | KeyType.RSA_4096:
            bits = int(key_type.value.removeprefix("rsa-"))
            return rsa.generate_private_key(public_exponent=65537, key_size=bits)
        case KeyType.ED25519:
            return ed25519.Ed25519PrivateKey.generate()
    raise ConfigurationError(f"unsupported CA key type {key_type!r}")  # pragma: no cover


def _signing_key(key: PrivateKeyTypes, where: str) -> SigningKey:
    """Narrow a parsed key to the kinds a CA may sign with, or say why not."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ConfigurationError(f"{where}: RSA keys below 2048 bits are not accepted")
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise ConfigurationError(f"{where}: elliptic curve {key.curve.name} is not supported")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return key
    raise ConfigurationError(f"{where}: {type(key).__name__} keys cannot sign certificates here")


def _hash_for(key: SigningKey) -> _Digest | None:
    """The digest paired with the CA key: matched to EC curve strength, none for EdDSA."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = key.curve.key_size
        if size > 384:
            return hashes.SHA512()
        if size > 256:
            return hashes.SHA384()
    return hashes.SHA256()


def _hash_for_public(public_key: CertificatePublicKeyTypes) -> _Digest | None:
    """:func:`_hash_for` by the public key (a token's key has no private object here)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        size = public_key.curve.key_size
        if size > 384:
            return hashes.SHA512()
        if size > 256:
            return hashes.SHA384()
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return None
    return hashes.SHA256()


def _token_hash(ca: _Authority) -> _Digest:
    """The digest of a signer-held CA: RSA and ECDSA keys always have one."""
    if ca.hash is None:
        raise ConfigurationError("an EdDSA key cannot be used through a token signer here")
    return ca.hash


def _spki(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _describe_key(public_key: CertificatePublicKeyTypes) -> str:
    """The :class:`KeyType` name of a key, or a description of what it is instead."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"rsa-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(
            public_key.curve.name, f"ecdsa-{public_key.curve.name}"
        )
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448"
    return type(public_key).__name__


def _authority(
    certificate: x509.Certificate,
    key: SigningKey | None,
    chain: tuple[x509.Certificate, ...],
    source: str,
    *,
    signer: CaSigner | None = None,
) -> _Authority:
    """Pair a CA certificate with its key (or token signer), refusing one not its own.

    A signer's serial secret is left empty here: it needs a signature (see :func:`_lent_signer`).
    """
    public_key_der = _spki(certificate.public_key())
    public_key: CertificatePublicKeyTypes
    if signer is not None:
        public_key = signer.public_key()
    else:
        assert key is not None
        public_key = key.public_key()
    if _spki(public_key) != public_key_der:
        raise ConfigurationError(
            "ca_private_key does not match ca_certificate_pem"
            if source == "supplied"
            else "the stored root's key does not match its certificate"
        )
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        authority_key_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    pems = tuple(
        c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in (certificate, *chain)
    )
    return _Authority(
        certificate=certificate,
        key=key,
        chain=chain,
        pems=pems,
        hash=_hash_for(key) if key is not None else _hash_for_public(public_key),
        authority_key_id=authority_key_id,
        public_key_der=public_key_der,
        not_after=min(c.not_valid_after_utc for c in (certificate, *chain)),
        source=source,
        serial_secret=_serial_secret(key) if key is not None else b"",
        signer=signer,
        deterministic=signer.deterministic if signer is not None else True,
    )


def _authority_from_state(blob: bytes) -> _Authority:
    """Rebuild the generated root from the state store; a damaged value is never replaced.

    Regenerating silently would change the root every client trusts, so a value that does not
    parse is reported and left for an operator to deal with.
    """
    try:
        stored = msgspec.json.decode(blob, type=_StoredRoot)
        certificate = load_certificate(stored.certificate_pem)
        key = load_private_key(stored.key_pem)
    except (msgspec.ValidationError, msgspec.DecodeError, PemError) as exc:
        raise ConfigurationError(
            f"the stored root CA ({ROOT_STATE_KEY!r} in this issuer's state) is damaged: {exc}"
        ) from None
    return _authority(certificate, _signing_key(key, "stored root key"), (), "self-signed")


async def _authority_from_lent(lent: SigningAuthority, own: _Authority) -> _Authority:
    """A tree CA the core handed over; its chain must end at this issuer's own CA."""
    try:
        certificate = load_certificate(lent.certificate_pem)
        chain = tuple(load_certificate(pem) for pem in lent.chain_pem)
        key = None if lent.signer is not None else load_private_key(lent.private_key_pem)
    except PemError as exc:
        raise ConfigurationError(f"tree CA {lent.ca_id}: {exc}") from None
    if not _issued_by(chain[-1] if chain else certificate, own.certificate):
        raise ConfigurationError(f"tree CA {lent.ca_id} does not chain to this issuer's CA")
    chain = (*chain, own.certificate, *own.chain)
    where = f"tree CA {lent.ca_id}"
    if lent.signer is not None:
        authority = _authority(certificate, None, chain, "tree", signer=lent.signer)
        if authority.deterministic:
            signature = await lent.signer.sign(_SERIAL_LABEL, hashes.SHA256())
            authority = dataclasses.replace(
                authority, serial_secret=hashlib.sha256(signature).digest()
            )
    else:
        assert key is not None
        authority = _authority(certificate, _signing_key(key, where), chain, "tree")
    return dataclasses.replace(authority, issuing=lent.issuing)


_SUBJECT_ORDER = (
    ("country", NameOID.COUNTRY_NAME),
    ("province", NameOID.STATE_OR_PROVINCE_NAME),
    ("locality", NameOID.LOCALITY_NAME),
    ("organization", NameOID.ORGANIZATION_NAME),
    ("organizational_unit", NameOID.ORGANIZATIONAL_UNIT_NAME),
)


def _ca_subject(request: SubordinateRequest) -> x509.Name:
    attributes = [
        x509.NameAttribute(oid, value)
        for field, oid in _SUBJECT_ORDER
        for value in getattr(request, field)
    ]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, request.common_name))
    return x509.Name(attributes)


def _in_subtree(name: str, subtree: str) -> bool:
    name, subtree = name.lower().removeprefix("*."), subtree.lower().lstrip(".")
    return name == subtree or name.endswith("." + subtree)


def _check_name_constraints(ca: _Authority, dns_names: tuple[str, ...]) -> None:
    """Refuse DNS names the CA chain may not certify: relying parties would reject the leaf.

    Every CA of the chain counts (RFC 5280 §6.1.4 (g) intersects their subtrees).
    """
    for certificate in (ca.certificate, *ca.chain):
        try:
            value = certificate.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            continue
        permitted = [n.value for n in value.permitted_subtrees or () if isinstance(n, x509.DNSName)]
        excluded = [n.value for n in value.excluded_subtrees or () if isinstance(n, x509.DNSName)]
        where = certificate.subject.rfc4514_string()
        for name in dns_names:
            if permitted and not any(_in_subtree(name, p) for p in permitted):
                raise RejectedError(f"{name} is outside the name constraints of {where}")
            if any(_in_subtree(name, e) for e in excluded):
                raise RejectedError(f"{name} is excluded by the name constraints of {where}")


REPLAY_WINDOW = timedelta(hours=24)
"""A retried order older than this is signed afresh: its validity would start too far back."""


def _replayable(request: IssueRequest, now: datetime) -> bool:
    """Whether to derive the certificate from the order, so that a retry re-creates it exactly.

    Needs the core's idempotency key and order time. The serial is an HMAC of the whole request
    under a secret only the CA key can produce, the validity counts from ``requested_at``, and
    the signature is deterministic (RFC 6979 ECDSA, PKCS#1 v1.5, EdDSA): the same order signed
    twice is the same certificate, byte for byte, so a crash between signing and storing can
    never put two certificates into the world.
    """
    at = request.requested_at
    return bool(request.idempotency_key) and at is not None and abs(now - at) <= REPLAY_WINDOW


def _derived_serial(ca: _Authority, request: IssueRequest, bits: int) -> int:
    """An unpredictable serial that is a function of the order (never zero)."""
    digest = hmac.new(ca.serial_secret, msgspec.json.encode(request), hashlib.sha512).digest()
    serial = int.from_bytes(digest, "big") >> (512 - bits)
    return serial or 1


_SERIAL_LABEL = b"certctl local CA: serial derivation key v1"


def _serial_secret(key: SigningKey) -> bytes:
    """A secret only the CA key can produce: the hash of its deterministic signature of a label.

    Kept in memory only; it works for any key that can sign (a token-held key included).
    """
    label = _SERIAL_LABEL
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(label, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    elif isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(label, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(label)
    return hashlib.sha256(signature).digest()


async def _sign_deterministically(
    builder: x509.CertificateBuilder, ca: _Authority
) -> x509.Certificate:
    if ca.signer is not None:  # deterministic only if the token's scheme is (ca.deterministic)
        return await signing.sign_certificate(builder, ca.signer, _token_hash(ca))
    assert ca.key is not None
    if isinstance(ca.key, ec.EllipticCurvePrivateKey):
        return builder.sign(ca.key, ca.hash, ecdsa_deterministic=True)
    return builder.sign(ca.key, ca.hash)  # PKCS#1 v1.5 and EdDSA are deterministic already


def _random_serial(bits: int) -> int:
    """A uniformly random positive serial below ``2**bits`` (never zero, RFC 5280 §4.1.2.2)."""
    while True:
        serial = secrets.randbits(bits)
        if serial:
            return serial


def _parse_serial(value: str) -> int:
    """Accept hexadecimal with or without ``0x``, colons or spaces, in either case."""
    text = value.strip().lower().removeprefix("0x").replace(":", "").replace(" ", "")
    try:
        serial = int(text, 16)
    except ValueError:
        raise RejectedError(f"serial {value!r} is not hexadecimal") from None
    if serial <= 0:
        raise RejectedError(f"serial {value!r} must be positive")
    return serial


def _issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _subject(common_name: str) -> x509.Name:
    if not common_name:
        return x509.Name([])
    try:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    except ValueError as exc:
        raise RejectedError(f"common name {common_name!r}: {exc}") from None


def _general_names(request: IssueRequest) -> list[x509.GeneralName]:
    sans = request.sans
    names: list[x509.GeneralName] = []
    try:
        names += [x509.DNSName(name) for name in sans.dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in sans.ip]
        names += [x509.RFC822Name(email) for email in sans.email]
        names += [x509.UniformResourceIdentifier(uri) for uri in sans.uri]
    except ValueError as exc:
        raise RejectedError(f"invalid subject alternative name: {exc}") from None
    return names


def _ekus(request: IssueRequest) -> list[x509.ObjectIdentifier]:
    """EKU OIDs in request order, without duplicates.

    A delegated OCSP responder is useless without id-kp-OCSPSigning (RFC 6960 §4.2.2.2), so an
    ``ocsp_no_check`` request gets it even if the core left it out.
    """
    names = list(request.ekus)
    if request.ocsp_no_check:
        names.append(ExtendedKeyUsage.OCSP_SIGNING.value)
    oids: list[x509.ObjectIdentifier] = []
    for name in names:
        try:
            oid = _EKU_OIDS[ExtendedKeyUsage(name)]
        except ValueError:
            known = ", ".join(e.value for e in ExtendedKeyUsage)
            raise RejectedError(f"unknown extended key usage {name!r}; known: {known}") from None
        if oid not in oids:
            oids.append(oid)
    return oids


def _leaf_extensions(
    ca: _Authority, request: IssueRequest, public_key: CertificatePublicKeyTypes
) -> list[tuple[x509.ExtensionType, bool]]:
    """The issued certificate's extensions with their criticality, in a conventional order."""
    names = _general_names(request)
    if not names and not request.common_name:
        raise RejectedError("the request has neither a common name nor subject alternative names")
    if request.is_ca:
        basic = x509.BasicConstraints(ca=True, path_length=0)
        usage = _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True)
    else:
        basic = x509.BasicConstraints(ca=False, path_length=None)
        usage = _key_usage(
            digital_signature=True,
            key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        )
    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (basic, True),
        (usage, True),
    ]
    ekus = _ekus(request)
    if ekus:
        extensions.append((x509.ExtendedKeyUsage(ekus), False))
    extensions.append((x509.SubjectKeyIdentifier.from_public_key(public_key), False))
    extensions.append((ca.authority_key_id, False))
    if names:
        # RFC 5280 §4.2.1.6: with an empty subject the SAN extension must be critical.
        extensions.append((x509.SubjectAlternativeName(names), not request.common_name))
    access = [
        x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url)
        )
        for url in request.ocsp_urls
    ] + [
        x509.AccessDescription(
            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(url)
        )
        for url in request.ca_issuer_urls
    ]
    if access:
        extensions.append((x509.AuthorityInformationAccess(access), False))
    if request.crl_urls:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(url) for url in request.crl_urls],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        extensions.append((x509.CRLDistributionPoints([point]), False))
    if request.must_staple:
        extensions.append((x509.TLSFeature([x509.TLSFeatureType.status_request]), False))
    if request.ocsp_no_check:
        extensions.append((x509.OCSPNoCheck(), False))
    return extensions


_REASON_EXTENSIONS: dict[RevocationReason, list[x509.Extension[x509.ExtensionType]]] = {
    reason: [x509.Extension(CRLEntryExtensionOID.CRL_REASON, False, x509.CRLReason(flag))]
    for reason, flag in _REASON_FLAGS.items()
}
"""One shared extension list per reason: building 100,000 entries is then a tight loop."""


def _revoked(request: CrlRequest) -> list[x509.RevokedCertificate]:
    """The CRL entries, checked as the builder's setters would, at a third of their cost."""
    revoked: list[x509.RevokedCertificate] = []
    seen: set[int] = set()
    for entry in request.entries:
        serial = _parse_serial(entry.serial)
        if serial in seen:
            raise RejectedError(f"serial {entry.serial} is listed twice")
        if serial.bit_length() >= 160:
            raise RejectedError(f"serial {entry.serial} is longer than 20 octets (RFC 5280)")
        seen.add(serial)
        if entry.reason == RevocationReason.REMOVE_FROM_CRL:
            raise RejectedError("removeFromCRL belongs in delta CRLs, not a complete CRL")
        at = entry.revoked_at
        if at.tzinfo is not None:
            at = at.astimezone(UTC).replace(tzinfo=None)
        if at.year < 1950:
            raise RejectedError(f"serial {entry.serial}: revocation date before 1950")
        revoked.append(
            x509.RevokedCertificateBuilder(
                serial, at, _REASON_EXTENSIONS.get(entry.reason, [])
            ).build()
        )
    return revoked


def _crl_builder(ca: _Authority, request: CrlRequest) -> x509.CertificateRevocationListBuilder:
    # Entries go in through the constructor: add_revoked_certificate copies the list each call.
    return (
        x509.CertificateRevocationListBuilder(revoked_certificates=_revoked(request))
        .issuer_name(ca.certificate.subject)
        .last_update(request.this_update)
        .next_update(request.next_update)
        .add_extension(x509.CRLNumber(request.crl_number), critical=False)
        .add_extension(ca.authority_key_id, critical=False)
    )


def _sign_crl(ca: _Authority, request: CrlRequest) -> bytes:
    assert ca.key is not None
    crl = _crl_builder(ca, request).sign(ca.key, ca.hash)
    return crl.public_bytes(serialization.Encoding.DER)
