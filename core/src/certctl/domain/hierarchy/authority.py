"""Lending a tree CA's key to its issuer (``ConnectorContext.authority``).

A ``file`` key is decrypted and handed over as PEM, in memory only; a ``pkcs11`` key is lent as
a signer (the issuer signs through it, the key stays in the token). A key that cannot be lent
(token unavailable, object deleted) raises :class:`~certctl_sdk.TransientError`: 503 on the
API, a retry for jobs.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from certctl.db.models import IntermediateCa
from certctl.domain.hierarchy.keystores import KeyStores, key_context
from certctl.errors import ServiceUnavailable
from certctl_sdk import SigningAuthority

__all__ = ["TreeAuthority", "ancestors", "key_context", "lend"]


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


async def lend(session: AsyncSession, stores: KeyStores, row: IntermediateCa) -> SigningAuthority:
    """The CA with its key (PEM or a token signer) and the tree chain above it."""
    key = await stores.lend(row)
    return SigningAuthority(
        ca_id=row.id,
        certificate_pem=row.certificate_pem,
        chain_pem=tuple(a.certificate_pem for a in await ancestors(session, row)),
        private_key_pem=key if isinstance(key, str) else "",
        signer=None if isinstance(key, str) else key,
        issuing=row.state == "active",
    )


class TreeAuthority:
    """An issuer's view of its tree: the chosen issuing CA, read when the issuer asks.

    The issuer caches what it gets per instance; every change of the choice or of the chosen
    CA's state also changes the issuer row, which gives it a new instance.
    """

    def __init__(
        self, issuer_id: str, sessions: async_sessionmaker[AsyncSession], stores: KeyStores
    ) -> None:
        self._issuer_id = issuer_id
        self._sessions = sessions
        self._stores = stores

    async def current(self) -> SigningAuthority | None:
        """The issuing CA of the tree, or None when the issuer signs with its own CA."""
        async with self._sessions() as session:
            row = await session.scalar(
                select(IntermediateCa).where(
                    IntermediateCa.issuer_id == self._issuer_id, IntermediateCa.issuing
                )
            )
            return None if row is None else await lend(session, self._stores, row)
