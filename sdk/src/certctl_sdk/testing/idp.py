"""An OpenID Provider on 127.0.0.1 for SSO tests: real HTTP, real signatures, real PKCE.

:class:`InProcessIdp` serves discovery, JWKS, an authorization endpoint that auto-approves
:attr:`InProcessIdp.user`, and a token endpoint that checks the client secret, the redirect
URI, single use of the code and the PKCE verifier before it signs an ID token (RS256, RS512,
ES256, ES384 or EdDSA, with ``at_hash``). With ``realm=`` it takes Keycloak's shape: paths under
``/realms/<realm>/protocol/openid-connect/``, issuer ``<base>/realms/<realm>``, and Keycloak's
claims (``typ``, ``azp``, ``session_state``, groups as ``/path``, ``realm_access.roles``).

Everything a test needs to attack the relying party is a knob: advertise HS256, sign with
``none`` or with the RSA public key as an HMAC secret, override or remove claims, bind
``at_hash`` to another access token or leave it out, sign with a key the JWKS does not
publish, rotate keys, make the JWKS endpoint fail, mint back-channel logout tokens.

It uses only the standard library's HTTP server and ``jwcrypto`` (which the SSO plugins
depend on)::

    with InProcessIdp() as idp:
        idp.register_client("certctl", "s3cret", ["https://certctl.test/auth/oidc/callback"])
        ...
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import httpx
from jwcrypto import jwk, jws

__all__ = ["REMOVE", "IdpClient", "IdpUser", "InProcessIdp", "TokenRequest"]

REMOVE: Any = object()
"""Use as a value in :attr:`InProcessIdp.id_token_overrides` to drop a claim."""

_CURVES = {"ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "EdDSA": ("OKP", "Ed25519")}
_POOL: dict[str, jwk.JWK] = {}
"""Keys by ``"<alg>/<name>"``."""
_POOL_LOCK = threading.Lock()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _new_key(alg: str, kid: str) -> jwk.JWK:
    if alg.startswith("RS"):
        return jwk.JWK.generate(kty="RSA", size=2048, kid=kid, alg=alg, use="sig")
    kty, crv = _CURVES[alg]
    return jwk.JWK.generate(kty=kty, crv=crv, kid=kid, alg=alg, use="sig")


def _pooled_key(alg: str, name: str = "initial") -> jwk.JWK:
    """Keys shared by every IdP in the process, made once each (RSA generation is slow).

    ``initial`` is every IdP's first key, ``rogue`` the one no JWKS publishes, ``rotation-N``
    the N-th key an IdP rotates to; kids stay unique within one IdP.
    """
    with _POOL_LOCK:
        key = _POOL.get(f"{alg}/{name}")
        if key is None:
            key = _POOL[f"{alg}/{name}"] = _new_key(alg, f"{alg.lower()}-{name}")
        return key


def at_hash(access_token: str, alg: str) -> str:
    """``at_hash`` as an OpenID Provider computes it (left half of the alg's hash)."""
    if alg == "EdDSA":
        digest = hashlib.sha512(access_token.encode()).digest()
    else:
        digest = hashlib.new(f"sha{alg[2:]}", access_token.encode()).digest()
    return _b64(digest[: len(digest) // 2])


@dataclass
class IdpUser:
    """The user the authorization endpoint signs in without asking."""

    subject: str = "user-alice"
    email: str | None = "alice@example.com"
    name: str = "Alice Example"
    preferred_username: str = "alice"
    groups: list[str] = field(default_factory=lambda: ["certctl-operators"])
    realm_roles: list[str] = field(default_factory=list)
    """Keycloak mode only: ``realm_access.roles``."""


@dataclass(frozen=True)
class IdpClient:
    """A registered confidential client."""

    client_id: str
    secret: str
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class TokenRequest:
    """One call of the token endpoint, as received (for assertions)."""

    form: dict[str, str]
    authorization: str | None
    status: int


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    user: IdpUser
    sid: str
    scope: str
    used: bool = False


class InProcessIdp:
    """A real OpenID Provider on an ephemeral loopback port; use it as a context manager."""

    def __init__(self, *, realm: str | None = None) -> None:
        self.realm = realm
        self.user = IdpUser()
        self.signing_alg = "RS256"
        self.advertised_algs: list[str] = ["RS256", "RS512", "ES256", "ES384", "EdDSA"]
        """What discovery lists in ``id_token_signing_alg_values_supported``."""
        self.id_token_overrides: dict[str, Any] = {}
        """Claims to set (or :data:`REMOVE`) in every ID token issued from now on."""
        self.sign_mode = "normal"
        """``normal``, ``none`` (unsigned), ``hs256-public-key`` (alg confusion: HMAC keyed
        with the RSA public key) or ``unknown-kid`` (a key the JWKS does not publish)."""
        self.at_hash_mode = "normal"
        """``normal``, ``omit``, or ``substituted`` (bound to another access token)."""
        self.jwks_fail = False
        """Answer the JWKS endpoint with 503."""
        self.discovery_fail = False
        self.send_iss = True
        """Put RFC 9207 ``iss`` on the authorization response."""
        self.iss_param: str | None = None
        """A different ``iss`` to send back (None: the real issuer)."""
        self.advertise_iss_parameter = True
        self.token_requests: list[TokenRequest] = []
        self.jwks_requests = 0
        self.discovery_requests = 0
        self.sessions: list[str] = []
        """The ``sid`` of every login, oldest first."""
        self._clients: dict[str, IdpClient] = {}
        self._grants: dict[str, _Grant] = {}
        self._keys: dict[str, jwk.JWK] = {alg: _pooled_key(alg) for alg in ("RS256", "ES256")}
        self._retired: list[jwk.JWK] = []
        self._rotations = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> InProcessIdp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # -- configuration ---------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        """The issuer identifier (``<base>/realms/<realm>`` in Keycloak mode)."""
        return self.base_url + self._prefix

    @property
    def _prefix(self) -> str:
        return f"/realms/{self.realm}" if self.realm else ""

    @property
    def _oidc(self) -> str:
        return f"{self._prefix}/protocol/openid-connect" if self.realm else ""

    def register_client(self, client_id: str, secret: str, redirect_uris: list[str]) -> IdpClient:
        """Allow a confidential client with these exact redirect URIs."""
        client = IdpClient(client_id, secret, tuple(redirect_uris))
        with self._lock:
            self._clients[client_id] = client
        return client

    def signing_key(self, alg: str | None = None) -> jwk.JWK:
        """The current (private) key for ``alg`` (default: :attr:`signing_alg`), made on demand."""
        alg = alg or self.signing_alg
        with self._lock:
            if alg not in self._keys:
                self._keys[alg] = _pooled_key(alg)
            return self._keys[alg]

    def rotate(self, alg: str | None = None, *, keep_old: bool = False) -> str:
        """Replace the signing key of ``alg`` with a new one; its kid is returned.

        ``keep_old`` keeps publishing the previous key (a graceful rotation); otherwise it
        disappears from the JWKS at once.
        """
        alg = alg or self.signing_alg
        self._rotations += 1
        key = _pooled_key(alg, f"rotation-{self._rotations}")
        kid = str(key.get("kid"))
        with self._lock:
            old = self._keys.get(alg)
            if keep_old and old is not None:
                self._retired.append(old)
            self._keys[alg] = key
        return kid

    def jwks(self) -> dict[str, Any]:
        """The published JWK Set (public keys only)."""
        with self._lock:
            keys = [*self._keys.values(), *self._retired]
        return {"keys": [k.export_public(as_dict=True) for k in keys]}

    def discovery(self) -> dict[str, Any]:
        """The discovery document."""
        base, oidc = self.base_url, self.base_url + self._oidc
        endpoints = {
            "authorization_endpoint": f"{oidc}/auth" if self.realm else f"{base}/authorize",
            "token_endpoint": f"{oidc}/token" if self.realm else f"{base}/token",
            "jwks_uri": f"{oidc}/certs" if self.realm else f"{base}/jwks",
        }
        return {
            "issuer": self.issuer,
            **endpoints,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "id_token_signing_alg_values_supported": list(self.advertised_algs),
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "profile", "email"],
            "claims_supported": ["sub", "iss", "aud", "email", "name", "groups", "sid"],
            "authorization_response_iss_parameter_supported": self.advertise_iss_parameter,
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
        }

    async def authorize(self, url: str) -> str:
        """Open an authorization URL as a browser would (real HTTP); return where it sends us.

        The user is signed in without a prompt, so the answer is the redirect back to the
        relying party's callback (with ``code``, ``state`` and ``iss``, or an ``error``).
        """
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(url)
        if response.status_code != 302:
            raise AssertionError(
                f"the IdP refused the request: {response.status_code} {response.text}"
            )
        return response.headers["location"]

    # -- tokens ----------------------------------------------------------------------------

    def sign(self, claims: dict[str, Any], *, mode: str | None = None, typ: str = "JWT") -> str:
        """A compact JWS over ``claims`` as :attr:`sign_mode` (or ``mode``) says."""
        mode = mode or self.sign_mode
        alg = self.signing_alg
        payload = json.dumps(claims, separators=(",", ":")).encode()
        if mode == "none":
            header = {"alg": "none", "typ": typ}
            return f"{_b64(json.dumps(header).encode())}.{_b64(payload)}."
        key = self.signing_key()
        if mode == "hs256-public-key":
            rsa = self.signing_key("RS256")
            secret = rsa.export_to_pem()  # the public key in PEM, as an attacker would have it
            header = {"alg": "HS256", "kid": rsa.get("kid"), "typ": typ}
            signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}"
            mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{_b64(mac)}"
        if mode == "unknown-kid":
            key = _pooled_key(alg, "rogue")
        elif mode != "normal":
            raise ValueError(f"unknown sign mode {mode!r}")
        token = jws.JWS(payload)
        token.add_signature(
            key, alg=alg, protected=json.dumps({"alg": alg, "kid": key.get("kid"), "typ": typ})
        )
        return str(token.serialize(compact=True))

    def id_token_claims(
        self, client_id: str, *, nonce: str | None, sid: str, access_token: str, user: IdpUser
    ) -> dict[str, Any]:
        """The claims of an ID token before overrides."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.subject,
            "aud": client_id,
            "exp": now + 300,
            "iat": now,
            "auth_time": now,
            "sid": sid,
            "name": user.name,
            "preferred_username": user.preferred_username,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if user.email is not None:
            claims["email"] = user.email
            claims["email_verified"] = True
        if self.realm:
            claims.update(
                {
                    "typ": "ID",
                    "azp": client_id,
                    "session_state": sid,
                    "groups": [f"/{g}" for g in user.groups],
                    "realm_access": {"roles": list(user.realm_roles)},
                }
            )
        else:
            claims["groups"] = list(user.groups)
        if self.at_hash_mode == "normal":
            claims["at_hash"] = at_hash(access_token, self.signing_alg)
        elif self.at_hash_mode == "substituted":
            claims["at_hash"] = at_hash(secrets.token_urlsafe(32), self.signing_alg)
        for name, value in self.id_token_overrides.items():
            if value is REMOVE:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def mint_logout_token(
        self,
        client_id: str,
        *,
        sub: str | None = None,
        sid: str | None = None,
        mode: str | None = None,
        **overrides: Any,
    ) -> str:
        """A back-channel logout token for ``sub`` and/or ``sid``; ``overrides`` set claims."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": int(time.time()),
            "jti": secrets.token_urlsafe(16),
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        }
        if sub is not None:
            claims["sub"] = sub
        if sid is not None:
            claims["sid"] = sid
        for name, value in overrides.items():
            if value is REMOVE:
                claims.pop(name, None)
            else:
                claims[name] = value
        return self.sign(claims, mode=mode or "normal", typ="logout+jwt")

    # -- HTTP ------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are separate writes

            def do_GET(self) -> None:
                idp._get(self)

            def do_POST(self) -> None:
                idp._post(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def _reply(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        handler.send_response(status)
        if body is not None:
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == f"{self._prefix}/.well-known/openid-configuration":
            self.discovery_requests += 1
            if self.discovery_fail:
                self._reply(handler, 503, {"error": "temporarily_unavailable"})
            else:
                self._reply(handler, 200, self.discovery())
        elif url.path == (f"{self._oidc}/certs" if self.realm else "/jwks"):
            self.jwks_requests += 1
            if self.jwks_fail:
                self._reply(handler, 503, {"error": "temporarily_unavailable"})
            else:
                self._reply(handler, 200, self.jwks())
        elif url.path == (f"{self._oidc}/auth" if self.realm else "/authorize"):
            self._authorize(handler, query)
        else:
            self._reply(handler, 404, {"error": "not_found"})

    def _authorize(self, handler: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        client = self._clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None or redirect_uri not in client.redirect_uris:
            # Never redirect to an unregistered URI: answer the browser directly.
            self._reply(handler, 400, {"error": "invalid_request", "detail": "client/redirect"})
            return
        state = query.get("state")

        def back(**params: str) -> None:
            if state is not None:
                params["state"] = state
            if self.send_iss:
                params["iss"] = self.iss_param or self.issuer
            self._reply(handler, 302, None, {"Location": f"{redirect_uri}?{urlencode(params)}"})

        if query.get("response_type") != "code":
            back(error="unsupported_response_type")
            return
        if "openid" not in query.get("scope", "").split():
            back(error="invalid_scope")
            return
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            back(error="invalid_request", error_description="PKCE S256 is required")
            return
        code = secrets.token_urlsafe(24)
        sid = secrets.token_urlsafe(12)
        with self._lock:
            self._grants[code] = _Grant(
                client_id=client.client_id,
                redirect_uri=redirect_uri,
                challenge=query["code_challenge"],
                nonce=query.get("nonce"),
                user=IdpUser(**vars(self.user)),
                sid=sid,
                scope=query.get("scope", ""),
            )
            self.sessions.append(sid)
        back(code=code)

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        raw = handler.rfile.read(length).decode()
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        if urlsplit(handler.path).path != (f"{self._oidc}/token" if self.realm else "/token"):
            self._reply(handler, 404, {"error": "not_found"})
            return
        status, body = self._token(form, handler.headers.get("Authorization"))
        with self._lock:
            self.token_requests.append(
                TokenRequest(form, handler.headers.get("Authorization"), status)
            )
        self._reply(handler, status, body)

    def _client_auth(self, form: dict[str, str], authorization: str | None) -> IdpClient | None:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except ValueError:
                return None
            user, _, password = decoded.partition(":")
            client_id, secret = unquote(user), unquote(password)
        client = self._clients.get(client_id or "")
        if client is None or secret is None:
            return None
        if not hmac.compare_digest(client.secret.encode(), secret.encode()):
            return None
        return client

    def _token(self, form: dict[str, str], authorization: str | None) -> tuple[int, Any]:
        client = self._client_auth(form, authorization)
        if client is None:
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self._grants.get(form.get("code", ""))
            if grant is None or grant.used or grant.client_id != client.client_id:
                return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
            grant.used = True
        if form.get("redirect_uri") != grant.redirect_uri:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
        verifier = form.get("code_verifier", "")
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        if not verifier or not hmac.compare_digest(challenge, grant.challenge):
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        access_token = secrets.token_urlsafe(32)
        claims = self.id_token_claims(
            client.client_id,
            nonce=grant.nonce,
            sid=grant.sid,
            access_token=access_token,
            user=grant.user,
        )
        body: dict[str, Any] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "refresh_token": secrets.token_urlsafe(32),
            "id_token": self.sign(claims),
            "scope": grant.scope,
        }
        if self.realm:
            body.update({"refresh_expires_in": 1800, "session_state": grant.sid})
        return 200, body
