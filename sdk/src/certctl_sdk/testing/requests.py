"""Builders for the request types the core hands connectors, filled with consistent test data."""

from __future__ import annotations

from certctl_sdk.config import Secret
from certctl_sdk.issuer import IssueRequest
from certctl_sdk.models import KeyType, SubjectAltNames
from certctl_sdk.pem import common_name_of, load_certificate
from certctl_sdk.target import DeployRequest
from certctl_sdk.testing.certs import IssuedLeaf, make_csr

__all__ = ["make_deploy_request", "make_issue_request"]


def make_issue_request(
    common_name: str = "www.example.test",
    sans: SubjectAltNames | None = None,
    *,
    key_type: KeyType = KeyType.ECDSA_P256,
    validity_seconds: int = 90 * 86400,
    idempotency_key: str = "test-idempotency-key",
) -> tuple[IssueRequest, str]:
    """Return ``(request, key_pem)``: a request whose CSR, CN and SANs agree with each other."""
    names = sans if sans is not None else SubjectAltNames(dns=(common_name,))
    csr_pem, key_pem = make_csr(common_name, names, key_type)
    request = IssueRequest(
        csr_pem=csr_pem,
        common_name=common_name,
        sans=names,
        validity_seconds=validity_seconds,
        idempotency_key=idempotency_key,
    )
    return request, key_pem


def make_deploy_request(
    leaf: IssuedLeaf,
    *,
    certificate_id: str = "cert-test",
    common_name: str | None = None,
    with_key: bool = True,
) -> DeployRequest:
    """A :class:`DeployRequest` for a leaf from :class:`~certctl_sdk.testing.TestCA`.

    ``with_key=False`` models an agent-side key (``private_key`` None).
    """
    if with_key and not leaf.key_pem:
        raise ValueError("this leaf was signed from a CSR and carries no key; pass with_key=False")
    return DeployRequest(
        certificate_id=certificate_id,
        common_name=common_name or common_name_of(load_certificate(leaf.certificate_pem)),
        certificate_pem=leaf.certificate_pem,
        chain_pem=leaf.chain_pem,
        serial=leaf.serial,
        fingerprint_sha256=leaf.fingerprint_sha256,
        private_key=Secret(leaf.key_pem) if with_key else None,
    )
