"""Roles, permissions and role grants (RBAC), and the counter that invalidates cached grants."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from certctl.db.base import Base, UTCDateTime, utcnow


class Permission(Base):
    """One entry of the permission catalogue."""

    __tablename__ = "permissions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(32))


class Role(Base):
    """A named set of permissions; built-in roles (``r-admin`` …) cannot be changed."""

    __tablename__ = "roles"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RolePermission(Base):
    """A permission a role holds."""

    __tablename__ = "role_permissions"

    role_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    permission: Mapped[str] = mapped_column(
        String(64), ForeignKey("permissions.name", ondelete="CASCADE"), primary_key=True
    )


class RoleGrant(Base):
    """A role held by an actor (API key name, user id or group), globally or for one scope.

    ``scope_type`` is ``global`` (with ``scope_id`` empty), ``profile`` or ``issuer``; an empty
    string rather than NULL keeps the uniqueness constraint the same on SQLite and PostgreSQL.
    """

    __tablename__ = "role_grants"
    __table_args__ = (
        UniqueConstraint("actor_type", "actor_id", "role_id", "scope_type", "scope_id"),
        Index("ix_role_grants_actor", "actor_type", "actor_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    """``APIKey``, ``User``, ``Group`` or ``Anonymous`` (the demo actor)."""
    actor_id: Mapped[str] = mapped_column(String(255))
    role_id: Mapped[str] = mapped_column(String(40), ForeignKey("roles.id", ondelete="CASCADE"))
    scope_type: Mapped[str] = mapped_column(String(16), default="global")
    scope_id: Mapped[str] = mapped_column(String(64), default="")
    granted_by: Mapped[str] = mapped_column(String(128))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuthGeneration(Base):
    """A single row whose value every change to keys, grants or sessions increments.

    Each process caches resolved credentials and re-reads this counter at most every
    ``CERTCTL_AUTH_CACHE_MS``; a changed value drops the cache, so a revocation made on one
    replica is enforced on every other within that bound.
    """

    __tablename__ = "auth_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
