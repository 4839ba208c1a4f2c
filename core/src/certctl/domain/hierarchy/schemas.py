"""Wire types of the CA hierarchy API (the reference's ``/intermediates`` routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from certctl_sdk.models import KeyType

__all__ = [
    "ALGORITHMS",
    "IntermediateIn",
    "IntermediateOut",
    "IssuingCaIn",
    "NameConstraintsIn",
    "RetireIn",
    "SubjectIn",
]

ALGORITHMS: dict[str, KeyType] = {
    "ECDSA-P256": KeyType.ECDSA_P256,
    "ECDSA-P384": KeyType.ECDSA_P384,
    "RSA-2048": KeyType.RSA_2048,
    "RSA-3072": KeyType.RSA_3072,
    "RSA-4096": KeyType.RSA_4096,
}
"""CA key algorithms; the names are the reference's."""

Algorithm = Literal["ECDSA-P256", "ECDSA-P384", "RSA-2048", "RSA-3072", "RSA-4096"]
_Attr = tuple[Annotated[str, Meta(min_length=1, max_length=64)], ...]
_Dns = tuple[Annotated[str, Meta(min_length=1, max_length=253)], ...]


class SubjectIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The CA's subject distinguished name."""

    common_name: Annotated[str, Meta(min_length=1, max_length=64)]
    organization: _Attr = ()
    organizational_unit: _Attr = ()
    country: tuple[Annotated[str, Meta(pattern="^[A-Z]{2}$")], ...] = ()
    locality: _Attr = ()
    province: _Attr = ()


class NameConstraintsIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """DNS subtrees (RFC 5280 §4.2.1.10): ``example.com`` covers it and every subdomain."""

    permitted_dns: _Dns = ()
    excluded_dns: _Dns = ()


class IntermediateIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Create a CA under ``parent_ca_id`` (empty: under the issuer's own CA, the root)."""

    name: Annotated[str, Meta(min_length=1, max_length=255)]
    subject: SubjectIn
    parent_ca_id: str | None = None
    algorithm: Algorithm = "ECDSA-P256"
    key_store: Literal["file", "pkcs11"] = "file"
    """``file``: generated here, sealed in the database; ``pkcs11``: generated inside the
    configured token, never extractable (400 when no token is configured)."""
    ttl_days: Annotated[int, Meta(ge=1, le=36500)] = 1825
    path_len_constraint: Annotated[int, Meta(ge=0, le=16)] | None = None
    """Omitted: one less than the parent's (unlimited under an unlimited parent)."""
    name_constraints: NameConstraintsIn | None = None
    """Omitted: the parent's constraints are repeated."""
    ocsp_responder_url: Annotated[str, Meta(max_length=2048, pattern="^https?://")] | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class RetireIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``confirm`` false: active → retiring; true: retiring → retired."""

    note: Annotated[str, Meta(max_length=2000)] = ""
    confirm: bool = False


class IssuingCaIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The tree CA that signs the issuer's leaves; null: the issuer's own CA again."""

    ca_id: str | None


class IntermediateOut(msgspec.Struct, frozen=True, kw_only=True):
    """A CA of the tree (the key is never returned)."""

    id: str
    issuer_id: str
    parent_ca_id: str | None
    name: str
    state: str
    issuing: bool
    algorithm: str
    key_store: str
    key_driver_id: str | None
    """``pkcs11``: the key's RFC 7512 URI (a reference, not the key); ``file``: null."""
    subject: str
    serial: str
    not_before: datetime
    not_after: datetime
    path_len_constraint: int | None
    name_constraints: NameConstraintsIn
    ocsp_responder_url: str | None
    metadata: dict[str, Any]
    certificate_pem: str
    retire_note: str | None
    created_at: datetime
    updated_at: datetime
