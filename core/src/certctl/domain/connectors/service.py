"""Connector instances: validated, encrypted configuration and live, cached connector objects.

Configuration is stored as JSON in which every field typed :class:`certctl_sdk.Secret` is an
encrypted blob bound to its row; the API renders those fields masked. Which fields are secret
is decided by the type in the connector's ``Config``, never by field names.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from certctl.db.base import new_id, utcnow
from certctl.db.models import ConnectorInstance
from certctl.domain.connectors.schemas import ConnectorCreate, ConnectorOut, ConnectorUpdate
from certctl.domain.connectors.state import DatabaseStateStore, PlainSecretResolver
from certctl.domain.hierarchy.authority import TreeAuthority
from certctl.domain.hierarchy.keystores import KeyStores
from certctl.errors import BadRequest, Conflict, NotFound
from certctl.lib.encryption import SecretBox
from certctl.plugins.registry import ConnectorRegistry, ConnectorSpec, UnknownConnectorKind
from certctl_sdk import (
    MASK,
    Connector,
    ConnectorConfig,
    ConnectorContext,
    Secret,
    decode_config,
    encode_config,
    reveal,
)
from certctl_sdk.errors import ConfigurationError

__all__ = ["FAMILY_PREFIX", "ConnectorService"]

FAMILY_PREFIX = {
    "issuer": "iss",
    "target": "tgt",
    "notifier": "ntf",
    "auth": "aup",
    "scanner": "scn",
}


class ConnectorService:
    """CRUD for connector rows and the cache of live connector objects."""

    def __init__(
        self,
        registry: ConnectorRegistry,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        http: httpx.AsyncClient,
        key_stores: KeyStores | None = None,
    ) -> None:
        self.registry = registry
        self._key_stores = key_stores or KeyStores(box)
        self._sessions = sessions
        self._box = box
        self._http = http
        self._resolver = PlainSecretResolver()
        self._live: dict[str, tuple[Any, Connector[Any]]] = {}

    # -- configuration ---------------------------------------------------------------------

    def spec(self, family: str, kind: str) -> ConnectorSpec:
        """The registered class for a kind, as a 400 when it is unknown."""
        try:
            return self.registry.get(family, kind)
        except UnknownConnectorKind as exc:
            raise BadRequest(str(exc)) from None

    def _seal(
        self, row_id: str, spec: ConnectorSpec, data: dict[str, Any], stored: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Validate ``data`` and return its storable form (secrets encrypted).

        A secret given as the mask keeps the stored ciphertext of the same field.
        """
        context = f"connector:{row_id}:config"
        kept: dict[str, str] = {}

        def secret_in(value: str) -> Secret:
            return Secret(value)

        config = decode_config(spec.cls.Config, data, secret=secret_in)
        masked_fields = {k for k, v in data.items() if v == MASK}
        if masked_fields:
            if stored is None:
                raise BadRequest(f"fields {sorted(masked_fields)} must be set to real values")
            kept = {k: stored[k] for k in masked_fields if k in stored}

        def seal(secret: Secret) -> str:
            return self._box.encrypt(reveal(secret).encode(), context)

        sealed = encode_config(config, secret=seal)
        for field, blob in kept.items():
            sealed[field] = blob
        return sealed

    def open_config(self, row: ConnectorInstance) -> ConnectorConfig:
        """Decode a stored configuration with its secrets decrypted."""
        spec = self.spec(row.family, row.kind)
        context = f"connector:{row.id}:config"

        def unseal(blob: str) -> Secret:
            return Secret(self._box.decrypt(blob, context).decode())

        return decode_config(spec.cls.Config, row.config, secret=unseal)

    def render(self, row: ConnectorInstance) -> ConnectorOut:
        """The API form of a row: secrets masked without being decrypted."""
        try:
            spec = self.registry.get(row.family, row.kind)
            config = encode_config(
                decode_config(spec.cls.Config, row.config, secret=lambda _: Secret(""))
            )
        except (UnknownConnectorKind, ConfigurationError):
            config = {}  # kind not installed: show nothing rather than guess what is secret
        return ConnectorOut(
            id=row.id,
            name=row.name,
            type=row.kind,
            config=config,
            enabled=row.enabled,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_tested_at=row.last_tested_at,
            test_status=row.test_status,
            test_message=row.test_message,
        )

    # -- rows ------------------------------------------------------------------------------

    async def get_row(self, session: AsyncSession, family: str, row_id: str) -> ConnectorInstance:
        """A row of ``family`` or NotFound."""
        row = await session.get(ConnectorInstance, row_id)
        if row is None or row.family != family:
            raise NotFound(f"{family} {row_id!r} not found")
        return row

    async def list_rows(
        self, session: AsyncSession, family: str, *, offset: int, limit: int
    ) -> tuple[list[ConnectorInstance], int]:
        """A page of rows and the total count."""
        query = select(ConnectorInstance).where(ConnectorInstance.family == family)
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.scalars(
            query.order_by(ConnectorInstance.name).offset(offset).limit(limit)
        )
        return list(rows), int(total or 0)

    async def create(
        self, session: AsyncSession, family: str, data: ConnectorCreate
    ) -> ConnectorInstance:
        """Validate and add a row (the caller commits)."""
        spec = self.spec(family, data.type)
        row_id = new_id(FAMILY_PREFIX[family])
        row = ConnectorInstance(
            id=row_id,
            family=family,
            name=data.name,
            kind=data.type,
            config=self._seal(row_id, spec, data.config, None),
            enabled=data.enabled,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        if await session.scalar(
            select(ConnectorInstance.id).where(
                ConnectorInstance.family == family, ConnectorInstance.name == data.name
            )
        ):
            raise Conflict(f"a {family} named {data.name!r} already exists")
        session.add(row)
        try:
            await session.flush()
        except IntegrityError:
            raise Conflict(f"a {family} named {data.name!r} already exists") from None
        return row

    async def update(
        self, session: AsyncSession, row: ConnectorInstance, data: ConnectorUpdate
    ) -> ConnectorInstance:
        """Apply a change (the caller commits); the live object is rebuilt on next use."""
        if data.config is not None:
            spec = self.spec(row.family, row.kind)
            row.config = self._seal(row.id, spec, data.config, row.config)
        if data.name is not None:
            row.name = data.name
        if data.enabled is not None:
            row.enabled = data.enabled
        row.updated_at = utcnow()
        return row

    # -- live objects ----------------------------------------------------------------------

    def instance(self, row: ConnectorInstance) -> Connector[Any]:
        """The live connector for a row, rebuilt whenever the row changed."""
        cached = self._live.get(row.id)
        if cached is not None and cached[0] == row.updated_at:
            return cached[1]
        spec = self.spec(row.family, row.kind)
        context = ConnectorContext(
            instance_id=row.id,
            http=self._http,
            logger=logging.getLogger(f"certctl.connector.{row.family}.{row.kind}"),
            clock=utcnow,
            secrets=self._resolver,
            state=DatabaseStateStore(row.id, self._sessions, self._box),
            authority=TreeAuthority(row.id, self._sessions, self._key_stores)
            if row.family == "issuer"
            else None,
        )
        connector = spec.cls(self.open_config(row), context)
        self._live[row.id] = (row.updated_at, connector)
        return connector

    async def aclose(self) -> None:
        """Close every live connector."""
        live, self._live = self._live, {}
        for _, connector in live.values():
            try:
                await connector.aclose()
            except Exception:
                logging.getLogger("certctl.connectors").exception("closing %s failed", connector)
