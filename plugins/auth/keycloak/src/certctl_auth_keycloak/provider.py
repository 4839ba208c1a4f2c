"""Keycloak single sign-on on python-keycloak's ``KeycloakOpenID``.

python-keycloak fetches the realm's well-known document, its certificates (JWKS) and redeems
the code at the token endpoint; every validation rule is
:class:`certctl_sdk.auth.SsoProvider`'s, shared with the generic OIDC provider. What Keycloak
adds is the shape of its groups: the group-membership mapper writes full paths (``/ops/pki``),
which become ``ops/pki``, and realm roles (``realm_access.roles``) can be mapped too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, TypeVar

from keycloak import KeycloakOpenID
from keycloak.exceptions import KeycloakConnectionError, KeycloakError

from certctl_auth_keycloak.config import KeycloakProviderConfig
from certctl_sdk import AuthenticationError, ConfigurationError, TransientError
from certctl_sdk.auth import SsoProvider, TokenExchangeError

__all__ = ["KeycloakProvider"]

T = TypeVar("T")


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []


class KeycloakProvider(SsoProvider[KeycloakProviderConfig]):
    """Single sign-on with a Keycloak realm."""

    kind: ClassVar[str] = "keycloak"
    display_name: ClassVar[str] = "Keycloak"
    description: ClassVar[str] = (
        "Browser sign-in with a Keycloak realm through python-keycloak; Keycloak groups and, "
        "optionally, realm roles map to certctl roles."
    )
    Config: ClassVar[type[KeycloakProviderConfig]] = KeycloakProviderConfig

    _client: KeycloakOpenID | None = None

    @property
    def issuer(self) -> str:
        """``<server_url>/realms/<realm>``, the issuer Keycloak writes in every token."""
        return f"{self.config.server_url.rstrip('/')}/realms/{self.config.realm}"

    async def _openid(self) -> KeycloakOpenID:
        if self._client is None:
            secret = await self.context.secrets.resolve(self.config.client_secret)
            self._client = KeycloakOpenID(
                # python-keycloak joins relative paths onto this URL: it must end with "/".
                server_url=self.config.server_url.rstrip("/") + "/",
                realm_name=self.config.realm,
                client_id=self.config.client_id,
                client_secret_key=secret,
                timeout=self.config.timeout,
            )
        return self._client

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except KeycloakConnectionError:
            raise TransientError(f"Keycloak is unreachable ({what})") from None
        except KeycloakError as exc:
            code = exc.response_code or 0
            if code >= 500 or code == 429:
                raise TransientError(f"Keycloak answered {code} ({what})") from None
            if code == 404:
                raise ConfigurationError(
                    f"Keycloak answered 404 for {what}: check server_url and realm"
                ) from None
            raise
        except TypeError:  # python-keycloak's answer for a body that is not a JSON object
            raise TransientError(f"Keycloak's {what} is not a JSON object") from None

    async def fetch_metadata(self) -> Mapping[str, Any]:
        """The realm's ``.well-known/openid-configuration``."""
        client = await self._openid()
        return await self._call("the well-known document", client.a_well_known)

    async def fetch_jwks(self, jwks_uri: str) -> Mapping[str, Any]:
        """The realm's certificates (``protocol/openid-connect/certs``)."""
        client = await self._openid()
        return await self._call("the realm certificates", client.a_certs)

    async def post_token_request(
        self, token_endpoint: str, form: Mapping[str, str]
    ) -> Mapping[str, Any]:
        """Redeem the code; python-keycloak sends the client secret in the form."""
        client = await self._openid()

        async def redeem() -> dict[str, Any]:
            return await client.a_token(
                grant_type=form["grant_type"],
                code=form["code"],
                redirect_uri=form["redirect_uri"],
                code_verifier=form["code_verifier"],
                scope=" ".join(self.config.scopes),
            )

        try:
            return await self._call("the token endpoint", redeem)
        except KeycloakError as exc:
            if exc.response_code == 401:
                raise AuthenticationError(
                    "Keycloak refused the client id or secret (invalid_client)"
                ) from None
            raise TokenExchangeError(
                f"Keycloak refused the code ({exc.response_code}, invalid_grant)"
            ) from None

    def groups_from_claims(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """Group paths without their leading ``/``, then prefixed realm roles when enabled."""
        groups = [g.lstrip("/") for g in super().groups_from_claims(claims)]
        if self.config.include_realm_roles:
            access = claims.get("realm_access")
            roles = _strings(access.get("roles")) if isinstance(access, Mapping) else []
            groups += [self.config.realm_role_prefix + r for r in roles]
        return tuple(dict.fromkeys(g for g in groups if g))

    async def aclose(self) -> None:
        """Close python-keycloak's HTTP client."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.connection.aclose()
