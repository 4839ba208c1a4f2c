"""A tree CA lent as a CaSigner (its key stays in a token): everything goes through ``sign``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from certctl_issuer_local import LocalIssuer, LocalIssuerConfig
from certctl_sdk import (
    CrlRequest,
    IssueRequest,
    SigningAuthority,
    SubjectAltNames,
    SubordinateRequest,
)
from certctl_sdk.testing import MemoryStateStore, make_context, make_csr


class CountingSigner:
    """A CaSigner over an in-memory key that counts its signatures (as a token would sign)."""

    def __init__(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self.signed = 0

    @property
    def deterministic(self) -> bool:
        return isinstance(self._key, rsa.RSAPrivateKey)

    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        return self._key.public_key()

    async def sign(self, data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        self.signed += 1
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), algorithm)
        return self._key.sign(data, ec.ECDSA(algorithm))


class _Lender:
    def __init__(self, authority: SigningAuthority | None) -> None:
        self.authority = authority

    async def current(self) -> SigningAuthority | None:
        return self.authority


def _issuer(state: MemoryStateStore, lent: SigningAuthority | None = None) -> LocalIssuer:
    context = msgspec.structs.replace(make_context(state=state), authority=_Lender(lent))
    return LocalIssuer(LocalIssuerConfig(), context)


async def _tree_ca(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> tuple[MemoryStateStore, x509.Certificate, x509.Certificate]:
    state = MemoryStateStore()
    own = _issuer(state)
    now = datetime.now(UTC)
    pem = await own.sign_subordinate(
        SubordinateRequest(
            public_key_pem=key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            common_name="Token CA",
            not_before=now - timedelta(minutes=1),
            not_after=now + timedelta(days=30),
            path_length=1,
        ),
        None,
    )
    [root_pem] = await own.ca_certificates()
    return (
        state,
        x509.load_pem_x509_certificate(pem.encode()),
        x509.load_pem_x509_certificate(root_pem.encode()),
    )


def _leaf(**fields: object) -> IssueRequest:
    return IssueRequest(
        csr_pem=make_csr("www.example.test")[0],
        common_name="www.example.test",
        sans=SubjectAltNames(dns=("www.example.test",)),
        validity_seconds=86400,
        **fields,  # type: ignore[arg-type]
    )


async def test_leaves_crls_and_children_are_signed_through_the_signer() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    state, ca, root = await _tree_ca(key)
    signer = CountingSigner(key)
    lent = SigningAuthority(
        ca_id="ica-1", certificate_pem=ca.public_bytes(serialization.Encoding.PEM).decode(),
        chain_pem=(), signer=signer,
    )  # fmt: skip
    issuer = _issuer(state, lent)

    issued = await issuer.issue(_leaf())
    leaf = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    leaf.verify_directly_issued_by(ca)
    assert leaf.signature_hash_algorithm is not None
    assert leaf.signature_hash_algorithm.name == "sha384"  # matched to the P-384 CA key
    assert issued.chain_pem[0] == ca.public_bytes(serialization.Encoding.PEM).decode()
    assert signer.signed == 1

    now = datetime.now(UTC).replace(microsecond=0)
    der = await issuer.sign_crl(
        CrlRequest(crl_number=7, this_update=now, next_update=now + timedelta(hours=1), entries=())
    )
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(key.public_key()) and crl.issuer == ca.subject
    assert signer.signed == 2

    child_key = ec.generate_private_key(ec.SECP256R1())
    child_pem = await issuer.sign_subordinate(
        SubordinateRequest(
            public_key_pem=child_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            common_name="Child",
            not_before=now,
            not_after=now + timedelta(days=1),
            path_length=0,
        ),
        lent,
    )
    x509.load_pem_x509_certificate(child_pem.encode()).verify_directly_issued_by(ca)
    assert signer.signed == 3
    assert root.subject == ca.issuer


async def test_a_non_deterministic_signer_never_replays_serials() -> None:
    """ECDSA in a token draws a nonce: a retried order must not re-use the serial."""
    key = ec.generate_private_key(ec.SECP256R1())
    state, ca, _ = await _tree_ca(key)
    lent = SigningAuthority(
        ca_id="ica-1", certificate_pem=ca.public_bytes(serialization.Encoding.PEM).decode(),
        chain_pem=(), signer=CountingSigner(key),
    )  # fmt: skip
    issuer = _issuer(state, lent)
    order = _leaf(idempotency_key="order-1", requested_at=datetime.now(UTC))
    first, second = await issuer.issue(order), await issuer.issue(order)
    assert first.serial != second.serial


async def test_an_rsa_signer_replays_orders_byte_for_byte() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state, ca, _ = await _tree_ca(key)
    lent = SigningAuthority(
        ca_id="ica-1", certificate_pem=ca.public_bytes(serialization.Encoding.PEM).decode(),
        chain_pem=(), signer=CountingSigner(key),
    )  # fmt: skip
    order = _leaf(idempotency_key="order-1", requested_at=datetime.now(UTC))
    first = await _issuer(state, lent).issue(order)
    again = await _issuer(state, lent).issue(order)  # a fresh instance, as after a restart
    assert first.certificate_pem == again.certificate_pem
