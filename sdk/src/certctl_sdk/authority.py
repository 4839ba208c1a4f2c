"""CA keys the core holds and lends to an issuer: the signing CA of a CA hierarchy.

The core keeps a tree of CAs under an issuer (root → intermediates → issuing CAs) and decides
which of them signs the issuer's certificates. An issuer that supports hierarchies reads that
choice through :attr:`ConnectorContext.authority <certctl_sdk.ConnectorContext.authority>`; the
key is handed over in memory only (the core stores it encrypted).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec

__all__ = ["AuthorityProvider", "SigningAuthority"]


class SigningAuthority(msgspec.Struct, frozen=True, kw_only=True):
    """A CA of the tree with its key: sign leaves (or children, CRLs) with it."""

    ca_id: str
    certificate_pem: str
    chain_pem: tuple[str, ...]
    """The tree CAs above it, nearest first; the issuer's own CA (the root) is not repeated."""
    private_key_pem: str
    issuing: bool = True
    """False while the CA retires: no new certificates, but CRLs and OCSP are still signed."""

    def __repr__(self) -> str:
        return f"SigningAuthority(ca_id={self.ca_id!r}, issuing={self.issuing})"


@runtime_checkable
class AuthorityProvider(Protocol):
    """The core's side of a CA hierarchy, as an issuer sees it."""

    async def current(self) -> SigningAuthority | None:
        """The CA chosen to sign this issuer's certificates; None: the issuer's own CA."""
        ...
