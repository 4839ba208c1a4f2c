"""certctl-auth-oidc: single sign-on with any OpenID Connect provider."""

from certctl_auth_oidc.config import OidcProviderConfig
from certctl_auth_oidc.provider import OidcProvider

__version__ = "0.1.0"

__all__ = ["OidcProvider", "OidcProviderConfig"]
