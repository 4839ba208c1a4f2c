"""Scrub secret-looking keys from audit details before they are hashed and stored.

A backstop, not the design: callers must never put secrets in ``details`` (connector secrets
are typed, not guessed by name). But an audit row cannot be changed once written, so a secret
that slipped into one would stay in the trail for good; replacing the value of these keys at
any depth costs nothing and closes that door. Matching is exact on the key name after
lower-casing and mapping ``-`` to ``_`` (``Client-Secret`` → ``client_secret``); partial
matches are left alone because names like ``token_id`` or ``key_name`` are safe and useful.
"""

from __future__ import annotations

from typing import Any

__all__ = ["REDACTED", "SECRET_KEYS", "redact"]

REDACTED = "[redacted]"

SECRET_KEYS = frozenset(
    {
        "access_token",
        "api_key",
        "api_keys",
        "apikey",
        "authorization",
        "bootstrap_token",
        "client_secret",
        "cookie",
        "credential",
        "credentials",
        "csrf_token",
        "encryption_key",
        "hmac_key",
        "id_token",
        "key_pem",
        "passphrase",
        "passwd",
        "password",
        "private_key",
        "private_key_pem",
        "privkey",
        "refresh_token",
        "secret",
        "secret_key",
        "session_token",
        "set_cookie",
        "signing_key",
        "token",
    }
)
"""Keys whose values never reach the audit trail."""


def _secret(key: object) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SECRET_KEYS


def redact(value: Any) -> Any:
    """A copy of ``value`` with the value of every secret key, at any depth, replaced.

    A null stays null: it reveals nothing and says that no secret was there.
    """
    if isinstance(value, dict):
        return {
            k: REDACTED if _secret(k) and v is not None else redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
