"""Single sign-on: OIDC providers (``auth`` connectors), the browser flow, back-channel logout."""
