"""certctl oidc auth provider."""
