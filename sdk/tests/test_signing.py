"""certctl_sdk.signing: structures signed through a CaSigner are what cryptography would sign."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from certctl_sdk import CaSigner, ConfigurationError
from certctl_sdk.signing import sign_certificate, sign_crl, sign_ocsp_response


class KeySigner:
    """A CaSigner over an in-memory key: the contract, without a token."""

    def __init__(self, key, public=None):
        self._key = key
        self._public = public or key.public_key()

    @property
    def deterministic(self):
        return isinstance(self._key, rsa.RSAPrivateKey)

    def public_key(self):
        return self._public

    async def sign(self, data, algorithm):
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), algorithm)
        return self._key.sign(data, ec.ECDSA(algorithm))


NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Signer Test CA")])
NOW = datetime.now(UTC)


def _ca_builder(public_key):
    return (
        x509.CertificateBuilder()
        .subject_name(NAME)
        .issuer_name(NAME)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(minutes=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )


KEYS = {
    "rsa-2048": (
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        hashes.SHA256(),
    ),
    "rsa-3072": (
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072),
        hashes.SHA384(),
    ),
    "ecdsa-p256": (lambda: ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()),
    "ecdsa-p384": (lambda: ec.generate_private_key(ec.SECP384R1()), hashes.SHA384()),
}


@pytest.mark.parametrize("kind", sorted(KEYS))
async def test_certificate_crl_and_ocsp_verify_under_the_signers_key(kind):
    make, digest = KEYS[kind]
    key = make()
    signer = KeySigner(key)
    assert isinstance(signer, CaSigner)
    ca = await sign_certificate(_ca_builder(key.public_key()), signer, digest)
    ca.verify_directly_issued_by(ca)
    assert ca.signature_hash_algorithm.name == digest.name
    assert ca.public_key().public_numbers() == key.public_key().public_numbers()

    revoked = x509.RevokedCertificateBuilder(12345, NOW - timedelta(hours=1)).build()
    crl = await sign_crl(
        x509.CertificateRevocationListBuilder(revoked_certificates=[revoked])
        .issuer_name(NAME)
        .last_update(NOW)
        .next_update(NOW + timedelta(hours=1)),
        signer,
        digest,
    )
    assert crl.is_signature_valid(key.public_key())
    assert crl.get_revoked_certificate_by_serial_number(12345) is not None

    response = await sign_ocsp_response(
        ocsp.OCSPResponseBuilder().add_response(
            cert=ca,
            issuer=ca,
            algorithm=hashes.SHA1(),  # noqa: S303 - RFC 5019 CertID
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=NOW + timedelta(hours=1),
            revocation_time=None,
            revocation_reason=None,
        ),
        signer,
        digest,
        responder=ca,
    )
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert [c.serial_number for c in response.certificates] == [ca.serial_number]
    verify = (
        (lambda s, d: key.public_key().verify(s, d, padding.PKCS1v15(), digest))
        if kind.startswith("rsa")
        else (lambda s, d: key.public_key().verify(s, d, ec.ECDSA(digest)))
    )
    verify(response.signature, response.tbs_response_bytes)
    assert (
        response.responder_key_hash
        == x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    )
    der = response.public_bytes(serialization.Encoding.DER)
    assert ocsp.load_der_ocsp_response(der).tbs_response_bytes == response.tbs_response_bytes


async def test_a_signature_by_another_key_is_refused():
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    lying = KeySigner(other, public=key.public_key())
    with pytest.raises(ConfigurationError, match="does not verify"):
        await sign_certificate(_ca_builder(key.public_key()), lying, hashes.SHA256())


async def test_an_unsupported_key_family_is_refused():
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    signer = KeySigner(key)
    with pytest.raises(ConfigurationError, match="cannot sign"):
        await sign_certificate(_ca_builder(key.public_key()), signer, hashes.SHA256())
