"""Lending a tree CA's key to its issuer (``ConnectorContext.authority``)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from certctl.db.models import IntermediateCa
from certctl.errors import ServiceUnavailable
from certctl.lib.encryption import SecretBox
from certctl_sdk import SigningAuthority

__all__ = ["TreeAuthority", "ancestors", "key_context", "lend"]


def key_context(ca_id: str) -> str:
    """Encryption context of a tree CA's private key."""
    return f"intermediate-ca:{ca_id}"


async def ancestors(session: AsyncSession, row: IntermediateCa) -> list[IntermediateCa]:
    """The tree CAs above ``row``, nearest first (the issuer's own CA is not a row)."""
    found: list[IntermediateCa] = []
    parent_id = row.parent_id
    while parent_id is not None:
        parent = await session.get(IntermediateCa, parent_id)
        if parent is None:  # pragma: no cover - the foreign key forbids it
            raise ServiceUnavailable(f"tree CA {parent_id} is missing")
        found.append(parent)
        parent_id = parent.parent_id
    return found


async def lend(session: AsyncSession, box: SecretBox, row: IntermediateCa) -> SigningAuthority:
    """The CA with its decrypted key and the tree chain above it."""
    key = await asyncio.to_thread(box.decrypt, row.private_key_enc, key_context(row.id))
    return SigningAuthority(
        ca_id=row.id,
        certificate_pem=row.certificate_pem,
        chain_pem=tuple(a.certificate_pem for a in await ancestors(session, row)),
        private_key_pem=key.decode(),
        issuing=row.state == "active",
    )


class TreeAuthority:
    """An issuer's view of its tree: the chosen issuing CA, read when the issuer asks.

    The issuer caches what it gets per instance; every change of the choice or of the chosen
    CA's state also changes the issuer row, which gives it a new instance.
    """

    def __init__(
        self, issuer_id: str, sessions: async_sessionmaker[AsyncSession], box: SecretBox
    ) -> None:
        self._issuer_id = issuer_id
        self._sessions = sessions
        self._box = box

    async def current(self) -> SigningAuthority | None:
        """The issuing CA of the tree, or None when the issuer signs with its own CA."""
        async with self._sessions() as session:
            row = await session.scalar(
                select(IntermediateCa).where(
                    IntermediateCa.issuer_id == self._issuer_id, IntermediateCa.issuing
                )
            )
            return None if row is None else await lend(session, self._box, row)
