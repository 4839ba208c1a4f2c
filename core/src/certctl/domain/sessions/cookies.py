"""The session cookie's format, its MAC, and the two cookies a signed-in browser holds.

``__Host-certctl_session = v1.<token>.<key id>.<mac>``: ``token`` is 32 random bytes
(base64url), ``key id`` names the signing key, ``mac`` is HMAC-SHA256 over the three fields,
each prefixed with its length, so bytes cannot be moved from one field to another without
changing the MAC. The ``__Host-`` prefix makes browsers refuse the cookie unless it is Secure,
has ``Path=/`` and no ``Domain``: a sibling subdomain cannot plant or overwrite it.

``__Host-certctl_csrf`` is readable by the page's scripts, which echo it in ``X-CSRF-Token``
(double submit); the server also keeps its SHA-256 on the session row.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from typing import Literal, NamedTuple

from litestar.datastructures import Cookie

__all__ = [
    "COOKIE_VERSION",
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "ParsedCookie",
    "clearing_cookies",
    "cookie_mac",
    "csrf_cookie",
    "encode_cookie",
    "new_secret",
    "parse_cookie",
    "session_cookie",
    "sha256_hex",
    "verify_mac",
]

SESSION_COOKIE = "__Host-certctl_session"
CSRF_COOKIE = "__Host-certctl_csrf"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_VERSION = "v1"

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
_KEY_ID = re.compile(r"^sk-[0-9a-f]{16}$")
_MAC = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_COOKIE_LENGTH = 256
"""A real cookie is about 115 characters; anything much longer is refused before parsing."""


class ParsedCookie(NamedTuple):
    """The fields of a well-formed cookie value (its MAC not yet checked)."""

    token: str
    key_id: str
    mac: bytes


def new_secret() -> str:
    """32 random bytes, base64url without padding (43 characters)."""
    return secrets.token_urlsafe(32)


def sha256_hex(value: str) -> str:
    """The stored verifier of a session token or CSRF token."""
    return hashlib.sha256(value.encode()).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def cookie_mac(key: bytes, version: str, token: str, key_id: str) -> bytes:
    """HMAC-SHA256 over the length-prefixed fields (4-byte big-endian length, then bytes)."""
    fields = (version.encode(), token.encode(), key_id.encode())
    message = b"".join(len(f).to_bytes(4, "big") + f for f in fields)
    return hmac.new(key, message, hashlib.sha256).digest()


def encode_cookie(token: str, key_id: str, key: bytes) -> str:
    """The session cookie's value."""
    mac = cookie_mac(key, COOKIE_VERSION, token, key_id)
    return f"{COOKIE_VERSION}.{token}.{key_id}.{_b64(mac)}"


def parse_cookie(value: str) -> ParsedCookie | None:
    """The fields of ``value``, or None when it is not a well-formed v1 cookie."""
    if len(value) > MAX_COOKIE_LENGTH:
        return None
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != COOKIE_VERSION:
        return None
    _, token, key_id, mac = parts
    if not (_TOKEN.match(token) and _KEY_ID.match(key_id) and _MAC.match(mac)):
        return None
    try:
        raw = base64.urlsafe_b64decode(mac + "=")
    except (binascii.Error, ValueError):
        return None
    if _b64(raw) != mac:  # only the canonical spelling: no second encoding of the same MAC
        return None
    return ParsedCookie(token, key_id, raw)


def verify_mac(key: bytes, parsed: ParsedCookie) -> bool:
    """Constant-time check of the cookie's MAC against ``key``."""
    expected = cookie_mac(key, COOKIE_VERSION, parsed.token, parsed.key_id)
    return hmac.compare_digest(expected, parsed.mac)


SameSite = Literal["lax", "strict"]


def _samesite(value: str) -> SameSite:
    return "strict" if value == "strict" else "lax"


def session_cookie(value: str, *, max_age: int, samesite: str) -> Cookie:
    """``__Host-certctl_session``: Secure, HttpOnly, ``Path=/``, no Domain."""
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path="/",
        max_age=max_age,
        secure=True,
        httponly=True,
        samesite=_samesite(samesite),
    )


def csrf_cookie(value: str, *, max_age: int, samesite: str) -> Cookie:
    """``__Host-certctl_csrf``: like the session cookie but readable by the page's scripts."""
    return Cookie(
        key=CSRF_COOKIE,
        value=value,
        path="/",
        max_age=max_age,
        secure=True,
        httponly=False,
        samesite=_samesite(samesite),
    )


def clearing_cookies(samesite: str) -> list[Cookie]:
    """Set-Cookie values that delete both cookies (with the attributes ``__Host-`` demands)."""
    cookies = [
        session_cookie("", max_age=0, samesite=samesite),
        csrf_cookie("", max_age=0, samesite=samesite),
    ]
    for cookie in cookies:
        cookie.expires = 0
    return cookies
