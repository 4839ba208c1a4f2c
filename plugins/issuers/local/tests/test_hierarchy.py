"""Signing subordinate CAs, and signing with a tree CA the core lends (SUBORDINATE_CA)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certctl_issuer_local import LocalIssuer, LocalIssuerConfig
from certctl_sdk import (
    ConfigurationError,
    CrlRequest,
    IssueRequest,
    RejectedError,
    SigningAuthority,
    SubjectAltNames,
    SubordinateRequest,
)
from certctl_sdk.testing import MemoryStateStore, make_context, make_csr


class _Lender:
    def __init__(self, authority: SigningAuthority | None) -> None:
        self.authority = authority

    async def current(self) -> SigningAuthority | None:
        return self.authority


def _issuer(state: MemoryStateStore, lent: SigningAuthority | None = None) -> LocalIssuer:
    context = msgspec.structs.replace(make_context(state=state), authority=_Lender(lent))
    return LocalIssuer(LocalIssuerConfig(), context)


def _request(key: ec.EllipticCurvePrivateKey, **fields: object) -> SubordinateRequest:
    now = datetime.now(UTC)
    values: dict[str, object] = {
        "public_key_pem": key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        "common_name": "Issuing CA",
        "organization": ("Example",),
        "not_before": now - timedelta(minutes=1),
        "not_after": now + timedelta(days=30),
        "path_length": 0,
        "permitted_dns": ("example.test",),
    }
    values.update(fields)
    return SubordinateRequest(**values)  # type: ignore[arg-type]


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _leaf(name: str = "www.example.test", **fields: object) -> IssueRequest:
    csr = make_csr(name)[0]
    return IssueRequest(
        csr_pem=csr,
        common_name=name,
        sans=SubjectAltNames(dns=(name,)),
        validity_seconds=86400,
        **fields,  # type: ignore[arg-type]
    )


async def test_a_lent_ca_signs_leaves_and_crls_and_stops_issuing_when_retiring() -> None:
    state = MemoryStateStore()
    own = _issuer(state)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = await own.sign_subordinate(_request(key), None)
    sub = x509.load_pem_x509_certificate(pem.encode())
    [root_pem] = await own.ca_certificates()
    root = x509.load_pem_x509_certificate(root_pem.encode())
    sub.verify_directly_issued_by(root)
    assert sub.extensions.get_extension_for_class(x509.NameConstraints).critical

    lent = SigningAuthority(
        ca_id="ica-1", certificate_pem=pem, chain_pem=(), private_key_pem=_pem(key)
    )
    tree = _issuer(state, lent)
    issued = await tree.issue(_leaf())
    assert issued.chain_pem == (pem, root_pem)
    x509.load_pem_x509_certificate(issued.certificate_pem.encode()).verify_directly_issued_by(sub)
    with pytest.raises(RejectedError, match="outside the name constraints"):
        await tree.issue(_leaf("www.example.org"))
    with pytest.raises(RejectedError, match="pathLenConstraint 0"):
        await tree.sign_subordinate(_request(ec.generate_private_key(ec.SECP256R1())), lent)

    retiring = _issuer(state, msgspec.structs.replace(lent, issuing=False))
    with pytest.raises(RejectedError, match="retiring"):
        await retiring.issue(_leaf())
    responder = await retiring.issue(
        IssueRequest(
            csr_pem=make_csr("OCSP responder")[0],
            common_name="OCSP responder",
            sans=SubjectAltNames(),
            validity_seconds=3600,
            ekus=("OCSPSigning",),
            ocsp_no_check=True,
        )
    )
    assert responder.chain_pem[0] == pem
    now = datetime.now(UTC)
    crl = x509.load_der_x509_crl(
        await retiring.sign_crl(
            CrlRequest(crl_number=1, this_update=now, next_update=now + timedelta(hours=1))
        )
    )
    assert crl.issuer == sub.subject and crl.is_signature_valid(sub.public_key())


async def test_a_lent_ca_from_another_root_or_outliving_its_parent_is_refused() -> None:
    own = _issuer(MemoryStateStore())
    key = ec.generate_private_key(ec.SECP256R1())
    pem = await own.sign_subordinate(_request(key), None)
    foreign = _issuer(
        MemoryStateStore(),
        SigningAuthority(
            ca_id="ica-x", certificate_pem=pem, chain_pem=(), private_key_pem=_pem(key)
        ),
    )
    with pytest.raises(ConfigurationError, match="does not chain to this issuer's CA"):
        await foreign.issue(_leaf())
    late = datetime.now(UTC) + timedelta(days=36500)
    with pytest.raises(RejectedError, match="within its parent's validity"):
        await own.sign_subordinate(_request(key, not_after=late), None)
