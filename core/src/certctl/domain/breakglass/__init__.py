"""Break-glass: local Argon2id passwords that start admin sessions when SSO is unavailable."""
