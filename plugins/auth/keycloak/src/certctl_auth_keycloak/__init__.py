"""certctl-auth-keycloak: single sign-on with a Keycloak realm, on python-keycloak."""

from certctl_auth_keycloak.config import KeycloakProviderConfig
from certctl_auth_keycloak.provider import KeycloakProvider

__version__ = "0.1.0"

__all__ = ["KeycloakProvider", "KeycloakProviderConfig"]
