"""Routes of the CA hierarchy: ``/api/v1/issuers/{id}/intermediates`` and ``/intermediates``.

Creating, choosing and retiring CAs needs ``ca.hierarchy.manage`` (admin only); reading the tree
needs ``issuer.read``, since CA certificates are public (they are served at
``/.well-known/pki/ca`` too) and rows never carry keys.
"""

from __future__ import annotations

from litestar import Controller, get, post, put
from litestar.params import FromPath, JSONBody

from certctl.domain.hierarchy import service
from certctl.domain.hierarchy.schemas import IntermediateIn, IntermediateOut, IssuingCaIn, RetireIn
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep

__all__ = ["IntermediateController"]

MANAGE = "ca.hierarchy.manage"


class IntermediateController(Controller):
    """Intermediate and issuing CAs below a Local CA issuer's own CA."""

    path = "/api/v1"
    tags = ["CA hierarchy"]

    @post("/issuers/{instance_id:str}/intermediates", opt={"permission": MANAGE})
    async def create(
        self,
        runtime: RuntimeDep,
        session: SessionDep,
        actor: ActorDep,
        instance_id: FromPath[str],
        data: JSONBody[IntermediateIn],
    ) -> IntermediateOut:
        """Create a CA under ``parent_ca_id`` (empty: under the issuer's own CA).

        RFC 5280's rules are checked against the parent (400 on a violation): path length below
        the parent's, permitted DNS subtrees within the parent's, excluded ones covering the
        parent's; ``notAfter`` is clipped to the parent's. ``key_store`` ``file``: the key is
        generated here and stored encrypted; ``pkcs11``: generated inside the configured token,
        non-extractable, and only its URI is stored (``key_driver_id``). Never returned.
        """
        issuer = await service.get_issuer_row(session, instance_id)
        row = await service.create_intermediate(runtime, session, issuer, data, actor)
        await session.commit()
        return service.render(row)

    @get("/issuers/{instance_id:str}/intermediates", opt={"permission": "issuer.read"})
    async def list_for_issuer(
        self, session: SessionDep, instance_id: FromPath[str]
    ) -> list[IntermediateOut]:
        """The issuer's tree, oldest first; ``parent_ca_id`` null means under its own CA."""
        await service.get_issuer_row(session, instance_id)
        return [service.render(r) for r in await service.list_intermediates(session, instance_id)]

    @put("/issuers/{instance_id:str}/issuing-ca", opt={"permission": MANAGE})
    async def choose_issuing(
        self,
        session: SessionDep,
        actor: ActorDep,
        instance_id: FromPath[str],
        data: JSONBody[IssuingCaIn],
    ) -> IntermediateOut | None:
        """Choose the tree CA that signs the issuer's leaves, CRL and OCSP (null: its own CA)."""
        issuer = await service.get_issuer_row(session, instance_id)
        chosen = await service.choose_issuing(session, issuer, data.ca_id, actor)
        await session.commit()
        return None if chosen is None else service.render(chosen)

    @get("/intermediates/{ca_id:str}", opt={"permission": "issuer.read"})
    async def get_one(self, session: SessionDep, ca_id: FromPath[str]) -> IntermediateOut:
        """One CA of a tree."""
        return service.render(await service.get_intermediate(session, ca_id))

    @post("/intermediates/{ca_id:str}/retire", opt={"permission": MANAGE}, status_code=200)
    async def retire(
        self,
        session: SessionDep,
        actor: ActorDep,
        ca_id: FromPath[str],
        data: JSONBody[RetireIn],
    ) -> IntermediateOut:
        """Drain first: ``confirm: false`` makes an active CA retiring, ``true`` retires it.

        Retiring: no new children or leaves, CRL and OCSP still signed. Retired is refused
        (409) while a child is not retired or while the CA is its issuer's issuing CA.
        """
        row = await service.get_intermediate(session, ca_id)
        row = await service.retire(session, row, data.note, data.confirm, actor)
        await session.commit()
        return service.render(row)
