"""What a SCEP CSR asks for: its names and its key type."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from certctl.domain.scep.cms import FailInfo, ScepFailure
from certctl_sdk.models import KeyType

__all__ = ["csr_key_type", "csr_names", "requested_names"]


def csr_names(csr: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    """(common name or ``""``, SAN values as strings) of the CSR."""
    try:
        common = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    except ValueError as exc:
        raise ScepFailure(FailInfo.BAD_REQUEST, f"unreadable CSR: {exc}") from None
    common_name = str(common[0].value) if common else ""
    values: list[str] = []
    for general in san or []:
        if isinstance(general, x509.DNSName | x509.RFC822Name | x509.UniformResourceIdentifier):
            values.append(general.value)
        elif isinstance(general, x509.IPAddress):
            values.append(str(general.value))
        else:
            raise ScepFailure(
                FailInfo.BAD_REQUEST, f"the CSR asks for a {type(general).__name__} name"
            )
    return common_name, values


def requested_names(csr: x509.CertificateSigningRequest) -> list[str]:
    """The names to issue for: the common name first, then the SANs, without repeats."""
    common_name, sans = csr_names(csr)
    names = list(dict.fromkeys([common_name, *sans] if common_name else sans))
    if not names:
        raise ScepFailure(FailInfo.BAD_REQUEST, "the CSR has neither a common name nor SANs")
    return names


def csr_key_type(csr: x509.CertificateSigningRequest) -> KeyType:
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        sizes = {2048: KeyType.RSA_2048, 3072: KeyType.RSA_3072, 4096: KeyType.RSA_4096}
        if key.key_size in sizes:
            return sizes[key.key_size]
        raise ScepFailure(FailInfo.BAD_REQUEST, f"RSA keys of {key.key_size} bits are refused")
    if isinstance(key, ec.EllipticCurvePublicKey):
        curves = {"secp256r1": KeyType.ECDSA_P256, "secp384r1": KeyType.ECDSA_P384}
        if key.curve.name in curves:
            return curves[key.curve.name]
        raise ScepFailure(FailInfo.BAD_REQUEST, f"curve {key.curve.name} is refused")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    raise ScepFailure(FailInfo.BAD_REQUEST, "unsupported key algorithm")
