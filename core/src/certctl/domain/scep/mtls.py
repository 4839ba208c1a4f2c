"""The mTLS twin's client check: the listener's certificate, re-verified for this profile.

The listener accepts client certificates from the union of every profile's trust bundle, so a
certificate good for one profile would otherwise open another's ``/scep-mtls`` endpoint. Here it
is verified again against this profile's bundle alone. The challenge password is still checked
afterwards: the certificate says which fleet a device belongs to, the password that it may
enrol now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from certctl.errors import Forbidden
from certctl.lib.peer_tls import peer_tls

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from certctl.domain.scep.service import Endpoint

__all__ = ["check_client_certificate"]


def check_client_certificate(
    scope: MutableMapping[str, Any], endpoint: Endpoint
) -> x509.Certificate:
    """The verified client certificate of this request; 403 without one this profile trusts."""
    peer = peer_tls(scope)
    if peer is None or peer.client_certificate is None:
        raise Forbidden("this SCEP endpoint requires a TLS client certificate")
    try:
        leaf = x509.load_der_x509_certificate(peer.client_certificate)
    except ValueError:
        raise Forbidden("the TLS client certificate is malformed") from None
    verifier = (
        PolicyBuilder()
        .store(Store(list(endpoint.mtls_roots)))
        .time(datetime.now(UTC))
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, [])
    except VerificationError:
        raise Forbidden(
            f"the client certificate is not trusted by SCEP profile {endpoint.settings.label}"
        ) from None
    return leaf
