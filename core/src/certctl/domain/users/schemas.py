"""Wire types of the users API."""

from __future__ import annotations

from datetime import datetime

import msgspec

from certctl.db.models import User

__all__ = ["UserOut", "user_out"]


class UserOut(msgspec.Struct, kw_only=True):
    """A federated (or break-glass) user."""

    id: str
    provider_id: str
    subject: str
    email: str | None
    display_name: str
    groups: list[str]
    """The provider's group names as of the last sign-in."""
    created_at: datetime
    last_login_at: datetime | None
    deactivated_at: datetime | None


def user_out(user: User) -> UserOut:
    """The wire form of a user row."""
    return UserOut(
        id=user.id,
        provider_id=user.provider_id,
        subject=user.subject,
        email=user.email,
        display_name=user.display_name,
        groups=list(user.groups),
        created_at=user.created_at,
        last_login_at=user.last_login_at,
        deactivated_at=user.deactivated_at,
    )
