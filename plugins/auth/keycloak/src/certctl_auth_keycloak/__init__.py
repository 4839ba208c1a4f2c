"""certctl keycloak auth provider."""
