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

    @classmethod
    def from_key(cls, private_key: Any, alg: str = "ES256") -> Signer:
        """Sign with an existing ``cryptography`` key (e.g. a certificate's, to revoke by it)."""
        signer = cls.__new__(cls)
        signer.key = jwk.JWK.from_pyca(private_key)
        signer.alg = alg
        signer.kid = None
        return signer

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


class AcmeClient:
    """Speaks ACME to the app under test through its ASGI client, one account key at a time."""

    def __init__(self, http: Any, directory_url: str, key: Signer) -> None:
        self.http = http
        self.directory_url = directory_url
        self.key = key
        self.directory: dict[str, Any] = {}

    async def start(self) -> AcmeClient:
        r = await self.http.get(self.directory_url)
        assert r.status_code == 200, r.text
        self.directory = r.json()
        return self

    async def nonce(self) -> str:
        r = await self.http.head(self.directory["newNonce"])
        assert r.status_code == 200, r.text
        return str(r.headers["Replay-Nonce"])

    async def post(
        self,
        url: str,
        payload: Any,
        *,
        key: Signer | None = None,
        nonce: str | None = None,
        signed_url: str | None = None,
        use_jwk: bool | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        """POST a JWS (``payload`` None: POST-as-GET); returns the httpx response."""
        body = (key or self.key).sign(
            payload,
            url=signed_url or url,
            nonce=nonce or await self.nonce(),
            use_jwk=use_jwk,
            extra=extra,
        )
        return await self.http.post(
            url, content=body, headers={"Content-Type": "application/jose+json"}
        )

    async def register(self, **payload: Any) -> Any:
        r = await self.post(self.directory["newAccount"], {"termsOfServiceAgreed": True, **payload})
        if r.status_code in (200, 201):
            self.key.kid = r.headers["Location"]
        return r


@pytest.fixture
async def acme_setup(client: Any, admin_headers: dict[str, str]) -> Callable[..., Any]:
    """``await acme_setup(**profile_fields)`` → (directory URL, issuer id, profile id)."""

    async def make(**profile: Any) -> tuple[str, str, str]:
        r = await client.post(
            "/api/v1/issuers",
            json={"name": f"ca-{len(profile)}-{id(profile)}", "type": "local", "config": {}},
            headers=admin_headers,
        )
        assert r.status_code == 201, r.text
        issuer = r.json()["id"]
        body = {"name": f"acme-{id(profile)}", "issuer_id": issuer, **profile}
        r = await client.post("/api/v1/profiles", json=body, headers=admin_headers)
        assert r.status_code == 201, r.text
        profile_id = r.json()["id"]
        return f"https://certctl.test.local/acme/profile/{profile_id}/directory", issuer, profile_id

    return make


@pytest.fixture
def acme_client() -> type[AcmeClient]:
    """The :class:`AcmeClient` class (tests cannot import conftest in importlib mode)."""
    return AcmeClient
