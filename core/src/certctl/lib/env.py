"""Reading typed ``CERTCTL_*`` values: the helpers every settings module shares.

The server's settings (``certctl.settings``) and the protocol servers' own families (EST,
SCEP, PKCS#11) read booleans, integers and durations the same way and fail the same way: a
:class:`SettingsError` that names the variable, so a misconfigured server refuses to start.
This module imports nothing of certctl, so any settings module can use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["SettingsError", "env_bool", "env_duration", "env_int"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_DURATION = re.compile(r"^([0-9]+)([smhd]?)$")
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


def env_bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case); unset or empty: ``default``."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}: expected true or false, got {raw!r}")


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    """A whole number of at least ``minimum``; unset or empty: ``default``."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}")
    return value


def env_duration(env: Mapping[str, str], name: str, default: int) -> int:
    """Seconds from ``90``, ``90s``, ``15m``, ``720h`` or ``30d``; at least one second."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    match = _DURATION.match(raw.strip().lower())
    if match is None:
        raise SettingsError(f"{name}: expected a duration such as 30d, 720h or 3600, got {raw!r}")
    value = int(match.group(1)) * DURATION_UNITS[match.group(2)]
    if value < 1:
        raise SettingsError(f"{name}: must be at least one second")
    return value
