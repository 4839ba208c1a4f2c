"""Authentication providers: connectors that establish who a caller is.

Two kinds exist. An :class:`AuthProvider` turns a request's credentials into a
:class:`Principal` (the core asks each provider in turn; None means "not mine").
An :class:`SsoProvider` signs browsers in through OpenID Connect: the core runs the redirect
flow and keeps the resulting login in a session cookie, and the provider does everything that
involves the identity provider (IdP).

Every OpenID Connect rule certctl enforces lives in :class:`SsoProvider`, once: algorithm
allow-list, exact issuer, audience and ``azp``, ``at_hash``, ``exp``/``iat``, nonce, PKCE S256,
the JWKS cache and its refresh on an unknown ``kid``, the downgrade defence on discovery and
the back-channel logout token rules. A concrete provider (generic OIDC over httpx, Keycloak over
python-keycloak) implements only the transport: :meth:`~SsoProvider.fetch_metadata`,
:meth:`~SsoProvider.fetch_jwks` and :meth:`~SsoProvider.post_token_request`. So two providers
can never disagree on what a valid token is.

The JOSE work uses ``jwcrypto``, which the SSO plugins depend on; it is imported when a token
is checked, so ``certctl_sdk`` itself imports without it.
"""

from __future__ import annotations

import abc
import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, TypeVar
from urllib.parse import urlencode, urlsplit

import msgspec
from msgspec import Meta

from certctl_sdk.config import ConnectorConfig, Secret
from certctl_sdk.connector import CheckResult, Connector, ConnectorContext
from certctl_sdk.errors import ConfigurationError, ConnectorError, RejectedError, TransientError

__all__ = [
    "ALLOWED_SIGNING_ALGS",
    "BACKCHANNEL_LOGOUT_EVENT",
    "AuthProvider",
    "AuthRequest",
    "InvalidTokenError",
    "JwkInfo",
    "JwksStatus",
    "LogoutClaims",
    "Principal",
    "ProviderMetadata",
    "ProviderRefused",
    "SsoConfig",
    "SsoIdentity",
    "SsoProvider",
    "TokenExchangeError",
    "TokenResponse",
    "check_endpoint_url",
    "new_pkce_verifier",
    "pkce_challenge",
]

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)
SsoConfigT = TypeVar("SsoConfigT", bound="SsoConfig")

ALLOWED_SIGNING_ALGS: tuple[str, ...] = ("RS256", "RS512", "ES256", "ES384", "EdDSA")
"""The only JWS algorithms accepted on ID and logout tokens (HS* and ``none`` never)."""

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
"""The ``events`` member a logout token must carry (OpenID Connect Back-Channel Logout 1.0)."""

_KEY_TYPES: Mapping[str, tuple[str, frozenset[str] | None]] = {
    "RS256": ("RSA", None),
    "RS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
"""Algorithm → the JWK key type (and curves) that may verify it; no other pairing is tried."""

_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
_MAX_TOKEN_LENGTH = 64 * 1024
ON_DEMAND_REFRESH_INTERVAL = 10.0
"""Seconds between JWKS refreshes that an unknown ``kid`` in a *logout* token may trigger.

Logout tokens arrive in unauthenticated POSTs, so without a bound anyone could make certctl
fetch the IdP's keys on every request. ID tokens come from the IdP's token endpoint over a
connection certctl opened, so an unknown ``kid`` there always earns one refresh.
"""


# -- request-credential providers ------------------------------------------------------------


class AuthRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of an HTTP request a provider may look at (header names are lower-case)."""

    method: str
    path: str
    headers: Mapping[str, str]
    client_ip: str | None = None


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who the caller is, as the provider established it."""

    subject: str
    provider: str
    display_name: str = ""
    email: str | None = None
    groups: tuple[str, ...] = ()


class AuthProvider(Connector[ConfigT], abc.ABC):
    """Base class of authentication providers."""

    family: ClassVar[str] = "auth"

    @abc.abstractmethod
    async def authenticate(self, request: AuthRequest) -> Principal | None:
        """Return the principal, None when the credentials are not this provider's."""


# -- errors ----------------------------------------------------------------------------------


class InvalidTokenError(RejectedError):
    """An ID or logout token failed a validation rule; the message names the rule, not the token."""


class TokenExchangeError(RejectedError):
    """The token endpoint refused the authorization code (used, expired, wrong verifier…)."""


class ProviderRefused(ConfigurationError):
    """The IdP's discovery document cannot be used safely (e.g. it advertises HS256 or none)."""


# -- configuration ---------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str, what: str) -> str:
    """``url`` when it is ``https://`` (or ``http://`` to a loopback host); ValueError otherwise.

    Plain HTTP is accepted only for 127.0.0.0/8, ::1 and ``localhost``, so tests and a local
    IdP can run without TLS while nothing on a network is ever trusted in clear.
    """
    if not isinstance(url, str) or any(c.isspace() for c in url):
        raise ValueError(f"{what} must be a URL without whitespace")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{what} {url!r} has no host")
    if parts.fragment:
        raise ValueError(f"{what} must not contain a fragment")
    if parts.username or parts.password:
        raise ValueError(f"{what} must not carry credentials")
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(host)):
        return url
    raise ValueError(f"{what} must use https:// (http:// only for a loopback host)")


class SsoConfig(ConnectorConfig, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What every SSO provider's configuration has; providers add how to find the issuer."""

    client_id: Annotated[
        str,
        Meta(min_length=1, max_length=255, description="OAuth client id registered at the IdP."),
    ]
    client_secret: Annotated[
        Secret,
        Meta(description="Client secret (confidential client); stored encrypted, never shown."),
    ]
    redirect_uri: Annotated[
        str,
        Meta(
            description=(
                "This server's callback, exactly as registered at the IdP: "
                "https://<certctl>/auth/oidc/callback."
            )
        ),
    ]
    scopes: Annotated[
        tuple[str, ...],
        Meta(description="Requested scopes; must contain openid."),
    ] = ("openid", "profile", "email")
    groups_claim: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=128,
            description="ID-token claim holding the user's groups; dots descend (a.b.c).",
        ),
    ] = "groups"
    allowed_email_domains: Annotated[
        tuple[str, ...],
        Meta(description="When set, only users whose email is in one of these domains may log in."),
    ] = ()
    iat_window_seconds: Annotated[
        int,
        Meta(ge=1, le=600, description="How far an ID token's iat may be from now, in seconds."),
    ] = 300
    jwks_cache_ttl_seconds: Annotated[
        int,
        Meta(ge=60, description="How long fetched signing keys are trusted before a refetch."),
    ] = 3600

    def __post_init__(self) -> None:
        check_endpoint_url(self.redirect_uri, "redirect_uri")
        if "openid" not in self.scopes:
            raise ValueError("scopes must contain openid")
        bad = [s for s in self.scopes if not _SCOPE_TOKEN.match(s)]
        if bad:
            raise ValueError(f"invalid scope {bad[0]!r}")
        for domain in self.allowed_email_domains:
            if not domain or "@" in domain or domain != domain.strip().lower():
                raise ValueError(f"allowed_email_domains: {domain!r} is not a lower-case domain")


# -- wire types ------------------------------------------------------------------------------


class ProviderMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """The parts of the IdP's discovery document certctl relies on, already checked."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    id_token_signing_alg_values_supported: tuple[str, ...]
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    code_challenge_methods_supported: tuple[str, ...] = ()
    authorization_response_iss_parameter_supported: bool = False
    backchannel_logout_supported: bool = False
    backchannel_logout_session_supported: bool = False


class TokenResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A successful token-endpoint answer (the refresh token is not kept)."""

    id_token: str
    access_token: str | None = None
    token_type: str | None = None
    expires_in: int | None = None

    def __repr__(self) -> str:
        return f"TokenResponse(token_type={self.token_type!r}, expires_in={self.expires_in})"


class SsoIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """Who logged in, from a validated ID token."""

    issuer: str
    subject: str
    display_name: str
    email: str | None = None
    groups: tuple[str, ...] = ()
    sid: str | None = None
    """The IdP's session id, used to match back-channel logouts."""
    claims: Mapping[str, Any] = msgspec.field(default_factory=dict)


class LogoutClaims(msgspec.Struct, frozen=True, kw_only=True):
    """A validated back-channel logout token: exactly one of ``subject`` and ``sid`` is set."""

    issuer: str
    jti: str
    iat: datetime
    subject: str | None = None
    sid: str | None = None


class JwkInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One cached signing key, public facts only."""

    kid: str | None
    kty: str
    alg: str | None = None
    crv: str | None = None


class JwksStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The state of a provider's key cache, for ``GET …/jwks-status``."""

    issuer: str
    keys: tuple[JwkInfo, ...]
    fetched_at: datetime | None
    expires_at: datetime | None
    refresh_count: int
    last_error: str | None = None
    last_error_at: datetime | None = None
    advertised_algs: tuple[str, ...] = ()


# -- helpers ---------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def new_pkce_verifier() -> str:
    """A PKCE code verifier: 64 characters from 48 random bytes (RFC 7636 §4.1)."""
    return secrets.token_urlsafe(48)


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of ``verifier`` (the only method certctl uses)."""
    if not _PKCE_VERIFIER.match(verifier):
        raise ValueError("a PKCE verifier is 43-128 characters of [A-Za-z0-9._~-]")
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


_HASHES = {"256": "sha256", "384": "sha384", "512": "sha512"}


def _token_hash(value: str, alg: str, crv: str | None) -> str:
    """``at_hash``: the left half of the hash the signing algorithm uses, base64url."""
    if alg == "EdDSA":
        if crv == "Ed448":
            digest = hashlib.shake_256(value.encode()).digest(114)
        else:
            digest = hashlib.sha512(value.encode()).digest()
    else:
        digest = hashlib.new(_HASHES[alg[2:]], value.encode()).digest()
    return _b64url(digest[: len(digest) // 2])


def _shown(value: Any) -> str:
    """A token-supplied value in an error message: quoted and cut short (tokens are input)."""
    text = repr(value)
    return text if len(text) <= 48 else text[:45] + "..."


def _number(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTokenError(f"the {name} claim is missing or not a number")
    return float(value)


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return list(aud)
    raise InvalidTokenError("the aud claim is missing or malformed")


def _claim_path(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(dict.fromkeys(v for v in value if isinstance(v, str) and v))
    return ()


def _advertised_algs(doc: Mapping[str, Any]) -> tuple[str, ...]:
    algs = doc.get("id_token_signing_alg_values_supported")
    if not isinstance(algs, list) or not algs or not all(isinstance(a, str) for a in algs):
        raise ProviderRefused(
            "discovery lacks id_token_signing_alg_values_supported (required by OIDC Discovery)"
        )
    weak = [a for a in algs if a.upper().startswith("HS") or a.lower() == "none"]
    if weak:
        raise ProviderRefused(
            f"discovery advertises {', '.join(weak)} for ID tokens; certctl refuses providers "
            "that offer symmetric or unsigned tokens (downgrade defence)"
        )
    if not set(algs) & set(ALLOWED_SIGNING_ALGS):
        raise ProviderRefused(
            f"discovery advertises only {', '.join(algs)}; certctl accepts "
            f"{', '.join(ALLOWED_SIGNING_ALGS)}"
        )
    return tuple(algs)


def parse_metadata(doc: Any, expected_issuer: str) -> ProviderMetadata:
    """Check a discovery document and keep what certctl uses.

    Refused: an issuer that is not exactly the configured one, HS*/``none`` advertised for ID
    tokens, PKCE without S256, endpoints that are not https (or loopback http).
    """
    if not isinstance(doc, Mapping):
        raise ProviderRefused("the discovery document is not a JSON object")
    issuer = doc.get("issuer")
    if issuer != expected_issuer:
        raise ProviderRefused(
            f"discovery issuer {issuer!r} does not match the configured {expected_issuer!r}"
        )
    algs = _advertised_algs(doc)
    methods = doc.get("code_challenge_methods_supported")
    if methods is not None and (not isinstance(methods, list) or "S256" not in methods):
        raise ProviderRefused("the IdP does not support PKCE with S256, which certctl requires")
    types = doc.get("response_types_supported")
    if isinstance(types, list) and "code" not in types:
        raise ProviderRefused("the IdP does not offer the authorization code flow")
    urls: dict[str, str | None] = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = doc.get(name)
        if not isinstance(value, str):
            raise ProviderRefused(f"discovery lacks {name}")
        urls[name] = value
    for name in ("userinfo_endpoint", "end_session_endpoint"):
        value = doc.get(name)
        urls[name] = value if isinstance(value, str) else None
    for name, value in urls.items():
        if value is not None:
            try:
                check_endpoint_url(value, name)
            except ValueError as exc:
                raise ProviderRefused(str(exc)) from None
    return ProviderMetadata(
        issuer=issuer,
        authorization_endpoint=str(urls["authorization_endpoint"]),
        token_endpoint=str(urls["token_endpoint"]),
        jwks_uri=str(urls["jwks_uri"]),
        userinfo_endpoint=urls["userinfo_endpoint"],
        end_session_endpoint=urls["end_session_endpoint"],
        id_token_signing_alg_values_supported=algs,
        code_challenge_methods_supported=tuple(methods or ()),
        authorization_response_iss_parameter_supported=(
            doc.get("authorization_response_iss_parameter_supported") is True
        ),
        backchannel_logout_supported=doc.get("backchannel_logout_supported") is True,
        backchannel_logout_session_supported=(
            doc.get("backchannel_logout_session_supported") is True
        ),
    )


def _parse_jwks(doc: Any) -> list[Any]:
    """The usable public signing keys of a JWK Set (jwcrypto ``JWK`` objects).

    Symmetric (``oct``) keys, encryption keys and unknown key types are skipped: a JWKS can
    never make certctl accept an HMAC-signed token.
    """
    from jwcrypto import jwk

    if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
        raise TransientError("the JWKS is not a JSON object with a keys array")
    keys = []
    for entry in doc["keys"]:
        if not isinstance(entry, Mapping) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwk.JWK(**dict(entry))
            keys.append(jwk.JWK(**key.export_public(as_dict=True)))
        except Exception:  # noqa: BLE001, S112 - one malformed key must not hide the others
            continue
    if not keys:
        raise TransientError("the JWKS holds no usable signing key")
    return keys


# -- the SSO provider base class -------------------------------------------------------------


class SsoProvider(AuthProvider[SsoConfigT], abc.ABC):
    """Base class of OpenID Connect sign-in providers (authorization code flow with PKCE).

    Subclasses implement :attr:`issuer` and the three transport methods; they may override
    :meth:`groups_from_claims`. Everything else — and every security rule — is here.
    """

    Config: ClassVar[type[SsoConfig]]

    def __init__(self, config: SsoConfigT, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self._metadata: ProviderMetadata | None = None
        self._keys: list[Any] | None = None
        self._fetched_at: datetime | None = None
        self._refreshes = 0
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._last_on_demand: datetime | None = None
        self._lock = asyncio.Lock()

    # -- what subclasses provide ---------------------------------------------------------

    @property
    @abc.abstractmethod
    def issuer(self) -> str:
        """The exact issuer identifier tokens must carry in ``iss``."""

    @abc.abstractmethod
    async def fetch_metadata(self) -> Mapping[str, Any]:
        """Fetch the discovery document. Raise TransientError when the IdP is unreachable."""

    @abc.abstractmethod
    async def fetch_jwks(self, jwks_uri: str) -> Mapping[str, Any]:
        """Fetch the JWK Set. Raise TransientError when it cannot be fetched."""

    @abc.abstractmethod
    async def post_token_request(
        self, token_endpoint: str, form: Mapping[str, str]
    ) -> Mapping[str, Any]:
        """POST ``form`` to the token endpoint, authenticated as the confidential client.

        Return the decoded JSON answer. Raise TokenExchangeError when the IdP refuses the grant
        (4xx ``invalid_grant``), AuthenticationError when it refuses the client credentials and
        TransientError for network failures and 5xx.
        """

    def groups_from_claims(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """The user's group names from validated ID-token claims (the configured claim)."""
        return _strings(_claim_path(claims, self.config.groups_claim))

    # -- AuthProvider ----------------------------------------------------------------------

    async def authenticate(self, request: AuthRequest) -> Principal | None:
        """None: SSO logins arrive as session cookies, which the core checks itself."""
        return None

    async def check(self) -> CheckResult:
        """Dry run: discovery, downgrade defence, issuer match and JWKS, without any login."""
        try:
            status = await self.refresh_keys()
        except ConnectorError as exc:
            return CheckResult(ok=False, message=exc.message)
        return CheckResult(
            ok=True,
            message=f"discovery and {len(status.keys)} signing key(s) loaded from {self.issuer}",
            details={"algorithms": ", ".join(status.advertised_algs)},
        )

    # -- metadata and keys -----------------------------------------------------------------

    def _now(self) -> datetime:
        return self.context.clock().astimezone(UTC)

    async def load_metadata(self) -> ProviderMetadata:
        """The checked discovery document, fetched (with the keys) on first use."""
        if self._metadata is None or self._keys is None:
            await self._refresh(self._refreshes)
        assert self._metadata is not None
        return self._metadata

    async def refresh_keys(self) -> JwksStatus:
        """Re-fetch discovery (re-running the downgrade defence) and the JWKS now."""
        await self._refresh(self._refreshes)
        return self.jwks_status()

    def jwks_status(self) -> JwksStatus:
        """What the key cache holds, when it was filled and the last failure."""
        keys = tuple(
            JwkInfo(kid=k.get("kid"), kty=k.get("kty"), alg=k.get("alg"), crv=k.get("crv"))
            for k in self._keys or ()
        )
        ttl = timedelta(seconds=self.config.jwks_cache_ttl_seconds)
        return JwksStatus(
            issuer=self.issuer,
            keys=keys,
            fetched_at=self._fetched_at,
            expires_at=None if self._fetched_at is None else self._fetched_at + ttl,
            refresh_count=self._refreshes,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            advertised_algs=(
                ()
                if self._metadata is None
                else self._metadata.id_token_signing_alg_values_supported
            ),
        )

    async def _refresh(self, seen: int) -> None:
        """Fetch discovery and keys unless another caller refreshed since ``seen`` (single flight).

        A refused discovery document drops metadata and keys: no login works until the IdP is
        fixed. A failed fetch keeps nothing stale past its TTL (see :meth:`_signing_keys`).
        """
        async with self._lock:
            if self._refreshes != seen and self._keys is not None:
                return
            try:
                metadata = parse_metadata(await self.fetch_metadata(), self.issuer)
                keys = _parse_jwks(await self.fetch_jwks(metadata.jwks_uri))
            except ProviderRefused as exc:
                self._metadata, self._keys, self._fetched_at = None, None, None
                self._failed(exc.message)
                raise
            except ConnectorError as exc:
                self._failed(exc.message)
                raise
            self._metadata, self._keys, self._fetched_at = metadata, keys, self._now()
            self._refreshes += 1
            self._last_error = None

    def _failed(self, message: str) -> None:
        self._last_error = message
        self._last_error_at = self._now()
        self.context.logger.warning("SSO provider %s: %s", self.issuer, message)

    def _compatible(self, key: Any, alg: str) -> bool:
        kty, curves = _KEY_TYPES[alg]
        if key.get("kty") != kty or (curves is not None and key.get("crv") not in curves):
            return False
        return key.get("alg") in (None, alg)

    async def _signing_keys(self, kid: str | None, alg: str, *, on_demand: bool) -> list[Any]:
        """The keys that may verify a token with this header.

        The cache is refilled when its TTL passed (a failure then answers TransientError: keys
        are never trusted past their TTL); an unknown ``kid`` earns one refresh when
        ``on_demand`` allows it, then the token is refused.
        """
        seen = self._refreshes
        ttl = timedelta(seconds=self.config.jwks_cache_ttl_seconds)
        if self._keys is None or self._fetched_at is None or self._now() >= self._fetched_at + ttl:
            await self._refresh(seen)
            seen = self._refreshes
        matching = self._matching(kid)
        if not matching and kid is not None and on_demand:
            self._last_on_demand = self._now()
            await self._refresh(seen)
            matching = self._matching(kid)
        if not matching:
            raise InvalidTokenError(f"no signing key with kid {_shown(kid)} in the IdP's JWKS")
        usable = [k for k in matching if self._compatible(k, alg)]
        if not usable:
            raise InvalidTokenError(f"the key {_shown(kid)} cannot verify {alg} signatures")
        return usable

    def _matching(self, kid: str | None) -> list[Any]:
        keys = self._keys or []
        return list(keys) if kid is None else [k for k in keys if k.get("kid") == kid]

    def _may_refresh_for_logout(self) -> bool:
        last = self._last_on_demand
        return last is None or (self._now() - last).total_seconds() >= ON_DEMAND_REFRESH_INTERVAL

    async def _verify_jws(self, token: str, *, on_demand: bool) -> tuple[dict[str, Any], str, Any]:
        """Check the header, pick the key, verify the signature; return (claims, alg, key)."""
        from jwcrypto import jws

        if not isinstance(token, str) or len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidTokenError("the token is not a compact JWS")
        if not _COMPACT_JWS.match(token):
            raise InvalidTokenError("the token is not a compact JWS")
        try:
            header = json.loads(_b64url_decode(token.split(".", 1)[0]))
        except (ValueError, binascii.Error):
            raise InvalidTokenError("the token header is not base64url JSON") from None
        if not isinstance(header, dict):
            raise InvalidTokenError("the token header is not a JSON object")
        alg = header.get("alg")
        if alg not in ALLOWED_SIGNING_ALGS:
            raise InvalidTokenError(
                f"token algorithm {_shown(alg)} is not allowed "
                f"(allowed: {', '.join(ALLOWED_SIGNING_ALGS)})"
            )
        if "crit" in header or "b64" in header:
            raise InvalidTokenError("tokens with critical or b64 header parameters are refused")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidTokenError("the kid header is not a string")
        for key in await self._signing_keys(kid, alg, on_demand=on_demand):
            verifier = jws.JWS()
            verifier.allowed_algs = [alg]
            try:
                verifier.deserialize(token)
                verifier.verify(key, alg=alg)
                payload = verifier.payload
            except Exception:  # noqa: BLE001, S112 - jwcrypto raises several types; try the next key
                continue
            try:
                claims = json.loads(payload)
            except ValueError:
                raise InvalidTokenError("the token payload is not JSON") from None
            if not isinstance(claims, dict):
                raise InvalidTokenError("the token payload is not a JSON object")
            return claims, alg, key
        raise InvalidTokenError("the token signature does not verify with the IdP's keys")

    def _check_issuer_and_audience(self, claims: Mapping[str, Any]) -> list[str]:
        if claims.get("iss") != self.issuer:
            shown = _shown(claims.get("iss"))
            raise InvalidTokenError(f"iss {shown} is not the issuer {self.issuer!r}")
        audiences = _audiences(claims)
        if self.config.client_id not in audiences:
            raise InvalidTokenError("the token's aud does not contain this client id")
        return audiences

    # -- the login flow ------------------------------------------------------------------

    async def authorization_url(self, *, state: str, nonce: str, code_verifier: str) -> str:
        """Where to send the browser: code flow, PKCE S256, state and nonce."""
        metadata = await self.load_metadata()
        params = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_uri,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce_challenge(code_verifier),
            "code_challenge_method": "S256",
        }
        endpoint = metadata.authorization_endpoint
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    def check_callback_issuer(self, iss: str | None) -> None:
        """RFC 9207: the callback's ``iss`` must be the issuer; required when advertised."""
        advertised = (
            self._metadata is not None
            and self._metadata.authorization_response_iss_parameter_supported
        )
        if iss is None:
            if advertised:
                raise InvalidTokenError("the IdP advertises RFC 9207 but sent no iss parameter")
            return
        if not hmac.compare_digest(iss.encode(), self.issuer.encode()):
            raise InvalidTokenError("the callback's iss parameter is not this provider's issuer")

    async def exchange_code(self, *, code: str, code_verifier: str) -> TokenResponse:
        """Redeem an authorization code with the PKCE verifier."""
        metadata = await self.load_metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "code_verifier": code_verifier,
            "client_id": self.config.client_id,
        }
        doc = await self.post_token_request(metadata.token_endpoint, form)
        id_token = doc.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise TokenExchangeError("the token endpoint returned no id_token")
        access_token = doc.get("access_token")
        if access_token is not None and not isinstance(access_token, str):
            raise TokenExchangeError("the token endpoint returned a malformed access_token")
        token_type = doc.get("token_type")
        if access_token and (not isinstance(token_type, str) or token_type.lower() != "bearer"):
            raise TokenExchangeError("the token endpoint returned a non-Bearer access token")
        expires_in = doc.get("expires_in")
        return TokenResponse(
            id_token=id_token,
            access_token=access_token or None,
            token_type=token_type if isinstance(token_type, str) else None,
            expires_in=expires_in if isinstance(expires_in, int) else None,
        )

    async def validate_id_token(
        self, id_token: str, *, nonce: str, access_token: str | None
    ) -> SsoIdentity:
        """Every ID-token rule, in order; the first one broken raises InvalidTokenError."""
        claims, alg, key = await self._verify_jws(id_token, on_demand=True)
        audiences = self._check_issuer_and_audience(claims)
        azp = claims.get("azp")
        if len(audiences) > 1 and azp is None:
            raise InvalidTokenError("a token with several audiences must carry azp")
        if azp is not None and azp != self.config.client_id:
            raise InvalidTokenError("the token's azp is not this client id")
        now = self._now().timestamp()
        if now >= _number(claims, "exp"):
            raise InvalidTokenError("the ID token has expired")
        if abs(now - _number(claims, "iat")) > self.config.iat_window_seconds:
            raise InvalidTokenError(
                f"the ID token's iat is more than {self.config.iat_window_seconds} s from now"
            )
        token_nonce = claims.get("nonce")
        if not isinstance(token_nonce, str) or not hmac.compare_digest(
            token_nonce.encode(), nonce.encode()
        ):
            raise InvalidTokenError("the ID token's nonce does not match this login")
        if access_token is not None:
            at_hash = claims.get("at_hash")
            if not isinstance(at_hash, str):
                raise InvalidTokenError("the ID token lacks at_hash although an access token came")
            expected = _token_hash(access_token, alg, key.get("crv"))
            if not hmac.compare_digest(at_hash.encode(), expected.encode()):
                raise InvalidTokenError("at_hash does not match the access token")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidTokenError("the ID token has no sub")
        email = claims.get("email") if isinstance(claims.get("email"), str) else None
        self._check_email_domain(email)
        sid = claims.get("sid")
        name = next(
            (
                str(claims[c])
                for c in ("name", "preferred_username", "email")
                if isinstance(claims.get(c), str) and claims[c]
            ),
            subject,
        )
        return SsoIdentity(
            issuer=self.issuer,
            subject=subject,
            display_name=name,
            email=email,
            groups=self.groups_from_claims(claims),
            sid=sid if isinstance(sid, str) and sid else None,
            claims=claims,
        )

    def _check_email_domain(self, email: str | None) -> None:
        allowed = self.config.allowed_email_domains
        if not allowed:
            return
        domain = email.rsplit("@", 1)[-1].lower() if email and "@" in email else None
        if domain not in allowed:
            raise InvalidTokenError("the user's email domain is not allowed to log in")

    async def complete_login(self, *, code: str, code_verifier: str, nonce: str) -> SsoIdentity:
        """Exchange the code and validate the ID token it returns."""
        tokens = await self.exchange_code(code=code, code_verifier=code_verifier)
        return await self.validate_id_token(
            tokens.id_token, nonce=nonce, access_token=tokens.access_token
        )

    async def verify_logout_token(self, token: str, *, max_age_seconds: int) -> LogoutClaims:
        """OpenID Connect Back-Channel Logout 1.0 §2.6, with certctl's stricter sub/sid rule.

        The spec asks for at least one of ``sub`` and ``sid``; certctl requires exactly one, so a
        token names either one IdP session or every session of one user, never an ambiguous mix.
        """
        claims, _, _ = await self._verify_jws(token, on_demand=self._may_refresh_for_logout())
        self._check_issuer_and_audience(claims)
        now = self._now().timestamp()
        iat = _number(claims, "iat")
        if abs(now - iat) > max_age_seconds:
            raise InvalidTokenError(f"the logout token's iat is more than {max_age_seconds} s old")
        if "exp" in claims and now >= _number(claims, "exp"):
            raise InvalidTokenError("the logout token has expired")
        events = claims.get("events")
        if not isinstance(events, Mapping) or not isinstance(
            events.get(BACKCHANNEL_LOGOUT_EVENT), Mapping
        ):
            raise InvalidTokenError("the logout token lacks the back-channel logout event")
        if "nonce" in claims:
            raise InvalidTokenError("a logout token must not contain a nonce")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise InvalidTokenError("the logout token has no usable jti")
        sub, sid = claims.get("sub"), claims.get("sid")
        present = [v for v in (sub, sid) if v is not None]
        if len(present) != 1 or not all(isinstance(v, str) and v for v in present):
            raise InvalidTokenError("a logout token must carry exactly one of sub and sid")
        return LogoutClaims(
            issuer=self.issuer,
            jti=jti,
            iat=datetime.fromtimestamp(iat, UTC),
            subject=sub if isinstance(sub, str) else None,
            sid=sid if isinstance(sid, str) else None,
        )
