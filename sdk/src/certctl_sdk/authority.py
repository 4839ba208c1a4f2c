"""CA keys the core holds and lends to an issuer: the signing CA of a CA hierarchy.

The core keeps a tree of CAs under an issuer (root → intermediates → issuing CAs) and decides
which of them signs the issuer's certificates. An issuer that supports hierarchies reads that
choice through :attr:`ConnectorContext.authority <certctl_sdk.ConnectorContext.authority>`.

The key comes one of two ways, depending on the CA's key store:

* ``file``: the PEM private key, handed over in memory only (the core stores it encrypted);
* ``pkcs11`` (or any store where the key never leaves its device): a :class:`CaSigner` that
  signs bytes. Build with ``cryptography`` and sign through :mod:`certctl_sdk.signing`, which
  signs the to-be-signed part with the signer and assembles the final DER.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["AuthorityProvider", "CaSigner", "SigningAuthority"]


@runtime_checkable
class CaSigner(Protocol):
    """A CA private key that stays where it is (an HSM, a PKCS#11 token): it only signs.

    ``sign`` returns the signature as X.509 carries it: PKCS#1 v1.5 for RSA, a DER
    ``ECDSA-Sig-Value`` for ECDSA. It raises :class:`~certctl_sdk.TransientError` when the
    device, session or key is unavailable, so callers can retry later.
    """

    @property
    def deterministic(self) -> bool:
        """Whether signing the same bytes twice gives the same signature (RSA PKCS#1 v1.5)."""
        ...

    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        """The key's public half (read once from the device, never the private part)."""
        ...

    async def sign(self, data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """Sign ``data`` (the whole message; the signer hashes it with ``algorithm``)."""
        ...


class SigningAuthority(msgspec.Struct, frozen=True, kw_only=True):
    """A CA of the tree with its key: sign leaves (or children, CRLs) with it.

    Exactly one of ``private_key_pem`` (file key store) and ``signer`` (a key that never leaves
    its token) is set.
    """

    ca_id: str
    certificate_pem: str
    chain_pem: tuple[str, ...]
    """The tree CAs above it, nearest first; the issuer's own CA (the root) is not repeated."""
    private_key_pem: str = ""
    signer: CaSigner | None = None
    issuing: bool = True
    """False while the CA retires: no new certificates, but CRLs and OCSP are still signed."""

    def __post_init__(self) -> None:
        if bool(self.private_key_pem) == (self.signer is not None):
            raise ValueError("a SigningAuthority carries either private_key_pem or a signer")

    def __repr__(self) -> str:
        store = "signer" if self.signer is not None else "pem"
        return f"SigningAuthority(ca_id={self.ca_id!r}, key={store}, issuing={self.issuing})"


@runtime_checkable
class AuthorityProvider(Protocol):
    """The core's side of a CA hierarchy, as an issuer sees it."""

    async def current(self) -> SigningAuthority | None:
        """The CA chosen to sign this issuer's certificates; None: the issuer's own CA."""
        ...
