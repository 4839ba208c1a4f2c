"""ACME server state (RFC 8555): accounts, orders, authorizations, challenges, nonces, EAB keys.

Every row belongs to one certificate profile: an ACME directory is per profile, so an account
registered under one profile is unknown to another. Nonces live in the database so a nonce
handed out by one replica is accepted once by any replica. The HMAC of an External Account
Binding key is stored encrypted (context ``acme-eab:<id>``) and shown to the operator once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class AcmeNonce(Base):
    """An unused ``Replay-Nonce``; consuming it is one ``DELETE … RETURNING``."""

    __tablename__ = "acme_nonces"
    __table_args__ = (Index("ix_acme_nonces_expires_at", "expires_at"),)

    value: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AcmeEabKey(Base):
    """An External Account Binding key an operator issued; it binds at most one account."""

    __tablename__ = "acme_eab_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    """The EAB ``kid`` the client sends."""
    profile_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("certificate_profiles.id", ondelete="CASCADE"), nullable=True
    )
    """None: valid under any profile's directory."""
    name: Mapped[str] = mapped_column(String(255), default="")
    hmac_enc: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True)
    bound_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AcmeAccount(Base):
    """An ACME account: a public key (JWK) registered under one profile's directory."""

    __tablename__ = "acme_accounts"
    __table_args__ = (UniqueConstraint("profile_id", "thumbprint"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    profile_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("certificate_profiles.id", ondelete="CASCADE"), index=True
    )
    jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    thumbprint: Mapped[str] = mapped_column(String(64))
    """RFC 7638 SHA-256 thumbprint of ``jwk``, base64url."""
    status: Mapped[str] = mapped_column(String(16), default="valid")
    """``valid``, ``deactivated`` (by the client) or ``revoked`` (by the operator)."""
    contact: Mapped[list[str]] = mapped_column(JSON, default=list)
    eab_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AcmeOrder(Base):
    """A new-order and where it went: its certificate, and the job that signs it."""

    __tablename__ = "acme_orders"
    __table_args__ = (
        Index("ix_acme_orders_account_created", "account_id", "created_at"),
        Index("ix_acme_orders_ip_created", "client_ip", "created_at"),
        Index("ix_acme_orders_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("acme_accounts.id", ondelete="CASCADE")
    )
    profile_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """RFC 8555 §7.1.6: pending → ready → processing → valid, or invalid."""
    identifiers: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    """``[{"type": "dns"|"ip", "value": …}]``, normalised (lower case, sorted, unique)."""
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    replaces: Mapped[str | None] = mapped_column(String(255), nullable=True)
    """RFC 9773 ``replaces``: the ARI certificate id this order renews."""
    certificate_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    """The managed certificate finalize created (``key_location = client``)."""
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    version_id: Mapped[str | None] = mapped_column(String(40), nullable=True, unique=True)
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AcmeAuthorization(Base):
    """The proof an account must give for one identifier of an order."""

    __tablename__ = "acme_authorizations"
    __table_args__ = (Index("ix_acme_authorizations_status_expires", "status", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("acme_orders.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[str] = mapped_column(String(40), index=True)
    identifier_type: Mapped[str] = mapped_column(String(8))
    identifier_value: Mapped[str] = mapped_column(String(255))
    """Without the ``*.`` of a wildcard (RFC 8555 §7.1.4); ``wildcard`` says it had one."""
    wildcard: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AcmeChallenge(Base):
    """One way to satisfy an authorization; the token is random and single-use."""

    __tablename__ = "acme_challenges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    authz_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("acme_authorizations.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    validated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
