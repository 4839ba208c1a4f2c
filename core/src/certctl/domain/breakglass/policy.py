"""What a break-glass username and password must look like (400 with the reason otherwise)."""

from __future__ import annotations

import re

from certctl.errors import BadRequest

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "USERNAME",
    "check_password",
    "check_username",
    "normalise_username",
]

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MAX_PASSWORD_LENGTH = 1024
"""Longer passwords are refused: they add nothing but hashing work."""
_MIN_DISTINCT = 6


def normalise_username(raw: str) -> str:
    """The stored spelling of a username (lower case, no surrounding blanks)."""
    return raw.strip().lower()


def check_username(username: str) -> str:
    """The normalised username, or 400."""
    name = normalise_username(username)
    if not USERNAME.match(name):
        raise BadRequest(
            "username must be 3 to 64 characters of a-z, 0-9, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str, *, username: str, min_length: int) -> None:
    """400 naming the first rule ``password`` breaks; the password is never echoed."""
    if len(password) < min_length:
        raise BadRequest(f"password must be at least {min_length} characters long")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadRequest(f"password must be at most {MAX_PASSWORD_LENGTH} characters long")
    if password != password.strip():
        raise BadRequest("password must not start or end with whitespace")
    if len(set(password)) < _MIN_DISTINCT:
        raise BadRequest(f"password must use at least {_MIN_DISTINCT} different characters")
    if username in password.lower():
        raise BadRequest("password must not contain the username")
