"""Typed connector configuration and the :class:`Secret` type.

A connector declares ``Config``, a frozen msgspec Struct that rejects unknown fields. Each field
should carry ``Annotated[..., Meta(description=...)]``: the JSON Schema built from it drives the API
and the dashboard's forms. Fields typed :class:`Secret` are encrypted at rest by the core, masked in
every API response and log line, and read through ``context.secrets`` at the moment of use.
Redaction follows the type, never the field's name.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from certctl_sdk.errors import ConfigurationError

__all__ = [
    "MASK",
    "ConnectorConfig",
    "Secret",
    "config_schema",
    "decode_config",
    "encode_config",
    "reveal",
]

MASK = "**********"
"""What a secret looks like in every rendering meant for people."""

ConfigT = TypeVar("ConfigT", bound="ConnectorConfig")


class Secret:
    """A secret value; it never renders itself. Hosts read it with :func:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a string")
        self._value = value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, len(self._value)))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


def reveal(secret: Secret) -> str:
    """Return the plaintext. For hosts and secret resolvers; connectors use ``context.secrets``."""
    return secret._value


class ConnectorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base for every connector's ``Config``."""


def _schema_hook(tp: type) -> dict[str, Any]:
    if tp is Secret:
        return {"type": "string", "format": "password", "writeOnly": True}
    raise NotImplementedError(f"no JSON Schema for {tp!r}")


def config_schema(config_type: type[ConnectorConfig]) -> dict[str, Any]:
    """The JSON Schema (2020-12) of a ``Config`` class, with secrets marked ``writeOnly``."""
    return msgspec.json.schema(config_type, schema_hook=_schema_hook)


def decode_config(
    config_type: type[ConfigT],
    data: Mapping[str, Any],
    *,
    secret: Callable[[str], Secret] = Secret,
) -> ConfigT:
    """Validate ``data`` into ``config_type``; raise :class:`ConfigurationError` naming the field.

    ``secret`` turns the stored form of a secret into a :class:`Secret` (the core decrypts there).
    """

    def dec_hook(tp: type, obj: Any) -> Any:
        if tp is Secret:
            if not isinstance(obj, str):
                raise msgspec.ValidationError("Expected `str` for a secret")
            return secret(obj)
        raise NotImplementedError

    if not isinstance(data, Mapping):
        raise ConfigurationError("configuration must be a JSON object")
    try:
        return msgspec.convert(dict(data), config_type, dec_hook=dec_hook, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(f"invalid configuration: {exc}") from None


def encode_config(
    config: ConnectorConfig, *, secret: Callable[[Secret], Any] = lambda _: MASK
) -> dict[str, Any]:
    """Render ``config`` as JSON-able builtins; ``secret`` decides what each secret becomes.

    The default masks; the core passes an encrypting function to store a config at rest.
    """

    def enc_hook(obj: Any) -> Any:
        if isinstance(obj, Secret):
            return secret(obj)
        raise NotImplementedError(f"cannot encode {type(obj).__name__}")

    result = msgspec.to_builtins(config, enc_hook=enc_hook)
    assert isinstance(result, dict)
    return result
