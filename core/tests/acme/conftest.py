"""Fixtures of the ACME tests; ``signer`` is a test ACME client's signing half (flattened JWS).

Tests use it to speak ACME to the app directly, including on purpose wrong messages (a bad
``url``, a replayed nonce, a foreign key); real clients (lego, certbot) are exercised in
``tests/integration``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from jwcrypto import jwk, jws
from jwcrypto.common import base64url_encode

ALG_OF = {"EC-P-256": "ES256", "EC-P-384": "ES384", "RSA": "RS256", "OKP-Ed25519": "EdDSA"}


class Signer:
    """An account key and the JWS it signs (``kid`` once registered, else ``jwk``)."""

    def __init__(self, kind: str = "EC-P-256") -> None:
        if kind == "RSA":
            self.key = jwk.JWK.generate(kty="RSA", size=2048)
        elif kind.startswith("EC-"):
            self.key = jwk.JWK.generate(kty="EC", crv=kind[3:])
        else:
            self.key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
        self.alg = ALG_OF[kind]
        self.kid: str | None = None

    @property
    def public_jwk(self) -> dict[str, Any]:
        return dict(self.key.export_public(as_dict=True))

    def thumbprint(self) -> str:
        return str(self.key.thumbprint())

    def sign(
        self,
        payload: Any,
        *,
        url: str,
        nonce: str | None,
        use_jwk: bool | None = None,
        extra: dict[str, Any] | None = None,
    ) -> bytes:
        """The request body; ``payload`` None means POST-as-GET (empty payload)."""
        protected: dict[str, Any] = {"alg": self.alg, "url": url}
        if nonce is not None:
            protected["nonce"] = nonce
        if use_jwk or (use_jwk is None and self.kid is None):
            protected["jwk"] = self.public_jwk
        else:
            protected["kid"] = self.kid
        protected.update(extra or {})
        body = b"" if payload is None else json.dumps(payload).encode()
        token = jws.JWS(body)
        token.add_signature(self.key, alg=self.alg, protected=json.dumps(protected))
        return token.serialize(compact=False).encode()

    def sign_inner(self, payload: Any, *, url: str) -> dict[str, Any]:
        """A JWS object with ``jwk`` and no nonce (key-change inner JWS, RFC 8555 §7.3.5)."""
        token = jws.JWS(json.dumps(payload).encode())
        protected = {"alg": self.alg, "jwk": self.public_jwk, "url": url}
        token.add_signature(self.key, alg=self.alg, protected=json.dumps(protected))
        return dict(json.loads(token.serialize(compact=False)))


def b64(data: bytes) -> str:
    return str(base64url_encode(data))


@pytest.fixture
def signer() -> Callable[..., Signer]:
    """``signer(kind="EC-P-256")`` makes an account key: EC-P-256, EC-P-384, RSA, OKP-Ed25519."""
    return Signer
