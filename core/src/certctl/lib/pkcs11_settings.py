"""``CERTCTL_PKCS11_*``: the PKCS#11 token that may hold CA private keys.

Parsed into one :class:`Pkcs11Settings` (``Settings.pkcs11``; None when no module is set). The
PIN comes from ``CERTCTL_PKCS11_PIN`` or, better, ``CERTCTL_PKCS11_PIN_FILE`` (a file readable
by the server only, so the PIN is not in the process environment); it never appears in a repr,
a log line or an API answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from certctl.lib.env import SettingsError

__all__ = ["Pkcs11Settings"]


class Pkcs11Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the token is and how to log in to it."""

    module: str
    """Path of the PKCS#11 library, e.g. ``/usr/lib/softhsm/libsofthsm2.so``."""
    token_label: str
    pin: str

    def __repr__(self) -> str:
        return f"Pkcs11Settings(module={self.module!r}, token_label={self.token_label!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Pkcs11Settings | None:
        """None unless ``CERTCTL_PKCS11_MODULE`` is set; every missing or doubled part is named."""
        module = env.get("CERTCTL_PKCS11_MODULE", "").strip()
        label = env.get("CERTCTL_PKCS11_TOKEN_LABEL", "").strip()
        pin = env.get("CERTCTL_PKCS11_PIN", "")
        pin_file = env.get("CERTCTL_PKCS11_PIN_FILE", "").strip()
        if not module:
            if label or pin or pin_file:
                raise SettingsError(
                    "CERTCTL_PKCS11_MODULE: required when CERTCTL_PKCS11_TOKEN_LABEL or a PIN "
                    "is set (the path of the PKCS#11 library)"
                )
            return None
        if not label:
            raise SettingsError("CERTCTL_PKCS11_TOKEN_LABEL: required with CERTCTL_PKCS11_MODULE")
        if pin and pin_file:
            raise SettingsError("CERTCTL_PKCS11_PIN and CERTCTL_PKCS11_PIN_FILE: set only one")
        if pin_file:
            try:
                pin = Path(pin_file).read_text().rstrip("\r\n")
            except OSError as exc:
                raise SettingsError(
                    f"CERTCTL_PKCS11_PIN_FILE: cannot read {pin_file}: {exc.strerror}"
                ) from None
        if not pin:
            raise SettingsError(
                "CERTCTL_PKCS11_PIN or CERTCTL_PKCS11_PIN_FILE: the token's user PIN is required"
            )
        return cls(module=module, token_label=label, pin=pin)
