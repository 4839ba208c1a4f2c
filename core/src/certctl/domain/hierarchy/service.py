"""Creating, listing, choosing and retiring the CAs of an issuer's hierarchy.

The tree lives in the core (``intermediate_cas``), not in the issuer's private state: the API,
RFC 5280's rules and retirement are the same for every issuer that can sign CA certificates,
and the keys are sealed with the server's box like every other secret. The issuer only signs:
:meth:`~certctl_sdk.Issuer.sign_subordinate` builds a CA certificate under a parent, and
:class:`TreeAuthority` lends it the chosen issuing CA's key, so leaves, CRLs and OCSP responder
certificates keep going through the issuer's one signing path.

Every rule is checked against the parent *certificate* (basicConstraints, nameConstraints,
validity), so children of the issuer's own CA and of a tree CA follow the same code.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import ConnectorInstance, IntermediateCa
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor
from certctl.domain.hierarchy.authority import ancestors, lend
from certctl.domain.hierarchy.keystores import KeyStore, NewKey
from certctl.domain.hierarchy.schemas import (
    ALGORITHMS,
    IntermediateIn,
    IntermediateOut,
    NameConstraintsIn,
)
from certctl.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from certctl_sdk import (
    ConnectorError,
    Issuer,
    IssuerCapability,
    RejectedError,
    SigningAuthority,
    SubordinateRequest,
)

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = [
    "choose_issuing",
    "create_intermediate",
    "get_intermediate",
    "get_issuer_row",
    "list_intermediates",
    "render",
    "retire",
]

BACKDATE = timedelta(minutes=1)
_log = logging.getLogger("certctl.hierarchy")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def render(row: IntermediateCa) -> IntermediateOut:
    """The API view of a row."""
    certificate = x509.load_pem_x509_certificate(row.certificate_pem.encode())
    return IntermediateOut(
        id=row.id,
        issuer_id=row.issuer_id,
        parent_ca_id=row.parent_id,
        name=row.name,
        state=row.state,
        issuing=row.issuing,
        algorithm=row.algorithm,
        key_store=row.key_store,
        key_driver_id=row.key_ref,
        subject=certificate.subject.rfc4514_string(),
        serial=row.serial_number,
        not_before=row.not_before,
        not_after=row.not_after,
        path_len_constraint=row.path_len_constraint,
        name_constraints=NameConstraintsIn(
            permitted_dns=tuple(row.permitted_dns), excluded_dns=tuple(row.excluded_dns)
        ),
        ocsp_responder_url=row.ocsp_responder_url,
        metadata=row.metadata_,
        certificate_pem=row.certificate_pem,
        retire_note=row.retire_note,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# -- RFC 5280 rules --------------------------------------------------------------------------


def _dns(value: str, field: str) -> str:
    name = value.strip().lower()
    if not all(_LABEL.match(label) for label in name.split(".")):
        raise BadRequest(f"{field}: {value!r} is not a DNS name (e.g. example.com)")
    return name


def _within(name: str, subtree: str) -> bool:
    """Whether DNS ``name`` is ``subtree`` or below it (RFC 5280 §4.2.1.10)."""
    return name == subtree or name.endswith("." + subtree)


def _is_dns(name: x509.GeneralName) -> bool:
    return isinstance(name, x509.DNSName)


def _constraints(certificate: x509.Certificate) -> tuple[list[str] | None, list[str]]:
    """(permitted DNS subtrees or None when unrestricted, excluded DNS subtrees)."""
    try:
        value = certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None, []
    permitted = [
        n.value.lower() for n in value.permitted_subtrees or () if isinstance(n, x509.DNSName)
    ]
    excluded = [
        n.value.lower() for n in value.excluded_subtrees or () if isinstance(n, x509.DNSName)
    ]
    return (permitted if value.permitted_subtrees else None), excluded


def _child_constraints(
    parent: x509.Certificate, given: NameConstraintsIn | None
) -> tuple[list[str], list[str]]:
    """The child's DNS subtrees: within the parent's permitted, covering its excluded."""
    permitted, excluded = _constraints(parent)
    if given is None:
        return list(permitted or []), excluded
    child_permitted = [_dns(d, "name_constraints.permitted_dns") for d in given.permitted_dns]
    child_excluded = [_dns(d, "name_constraints.excluded_dns") for d in given.excluded_dns]
    if permitted is not None:
        if not child_permitted:
            raise BadRequest(
                "name_constraints.permitted_dns must not be empty: the parent CA permits only "
                f"{', '.join(permitted)}"
            )
        for name in child_permitted:
            if not any(_within(name, p) for p in permitted):
                raise BadRequest(
                    f"name_constraints.permitted_dns: {name} is outside the parent CA's "
                    f"permitted subtrees ({', '.join(permitted)})"
                )
    for name in excluded:
        if not any(_within(name, e) for e in child_excluded):
            raise BadRequest(
                f"name_constraints.excluded_dns must include the parent CA's excluded subtree "
                f"{name}"
            )
    return child_permitted, child_excluded


def _child_path_length(parent: x509.Certificate, given: int | None) -> int | None:
    basic = parent.extensions.get_extension_for_class(x509.BasicConstraints).value
    limit = basic.path_length
    if limit == 0:
        raise BadRequest(
            "the parent CA has pathLenConstraint 0: it may issue leaves but no CA certificates"
        )
    if given is None:
        return None if limit is None else limit - 1
    if limit is not None and given >= limit:
        raise BadRequest(
            f"path_len_constraint must be below the parent CA's ({limit}); at most {limit - 1}"
        )
    return given


# -- the routes' work ------------------------------------------------------------------------


def _issuer(runtime: Runtime, row: ConnectorInstance) -> Issuer[Any]:
    issuer = runtime.connectors.instance(row)
    if not isinstance(issuer, Issuer) or IssuerCapability.SUBORDINATE_CA not in issuer.capabilities:
        raise BadRequest(f"issuer {row.id} ({row.kind}) cannot sign CA certificates")
    return issuer


async def get_issuer_row(session: AsyncSession, issuer_id: str) -> ConnectorInstance:
    row = await session.get(ConnectorInstance, issuer_id)
    if row is None or row.family != "issuer":
        raise NotFound(f"issuer {issuer_id!r} not found")
    return row


async def get_intermediate(session: AsyncSession, ca_id: str) -> IntermediateCa:
    row = await session.get(IntermediateCa, ca_id)
    if row is None:
        raise NotFound(f"intermediate CA {ca_id!r} not found")
    return row


async def list_intermediates(session: AsyncSession, issuer_id: str) -> list[IntermediateCa]:
    rows = await session.scalars(
        select(IntermediateCa)
        .where(IntermediateCa.issuer_id == issuer_id)
        .order_by(IntermediateCa.created_at, IntermediateCa.id)
    )
    return list(rows)


async def _root_certificate(
    session: AsyncSession, issuer: Issuer[Any], issuer_id: str
) -> x509.Certificate:
    """The issuer's own CA: below it in ``ca_certificates()`` sit the chosen issuing CA's rows."""
    issuing = await session.scalar(
        select(IntermediateCa).where(IntermediateCa.issuer_id == issuer_id, IntermediateCa.issuing)
    )
    depth = 0 if issuing is None else len(await ancestors(session, issuing)) + 1
    try:
        chain = await issuer.ca_certificates()
    except ConnectorError as exc:
        raise ServiceUnavailable(f"the issuer's CA is unavailable: {exc.message}") from None
    return x509.load_pem_x509_certificate(chain[depth].encode())


async def create_intermediate(
    runtime: Runtime,
    session: AsyncSession,
    issuer_row: ConnectorInstance,
    data: IntermediateIn,
    actor: Actor,
) -> IntermediateCa:
    """Check RFC 5280's rules against the parent, generate a key, have the issuer sign it.

    ``notAfter`` is clipped to the parent's: a child cannot outlive the CA above it, and the
    response shows the date it got.
    """
    issuer = _issuer(runtime, issuer_row)
    store = runtime.key_stores.get(data.key_store)
    lent: SigningAuthority | None = None
    parent_row: IntermediateCa | None = None
    if data.parent_ca_id:
        parent_row = await session.get(IntermediateCa, data.parent_ca_id)
        if parent_row is None or parent_row.issuer_id != issuer_row.id:
            raise BadRequest(
                f"parent_ca_id {data.parent_ca_id!r} is not a CA of issuer {issuer_row.id}"
            )
        if parent_row.state != "active":
            raise Conflict(
                f"parent CA {parent_row.id} is {parent_row.state}: it issues nothing new"
            )
        parent = x509.load_pem_x509_certificate(parent_row.certificate_pem.encode())
        lent = await lend(session, runtime.key_stores, parent_row)
    else:
        parent = await _root_certificate(session, issuer, issuer_row.id)
    path_length = _child_path_length(parent, data.path_len_constraint)
    permitted, excluded = _child_constraints(parent, data.name_constraints)
    now = utcnow()
    not_before = max(now - BACKDATE, parent.not_valid_before_utc)
    not_after = min(now + timedelta(days=data.ttl_days), parent.not_valid_after_utc)
    if not_after <= now:
        raise BadRequest("the parent CA has expired")
    key_type = ALGORITHMS[data.algorithm]
    row_id = new_id("ica")
    key = await store.generate(key_type, row_id)
    try:
        request = SubordinateRequest(
            public_key_pem=key.public_key_pem,
            common_name=data.subject.common_name,
            organization=data.subject.organization,
            organizational_unit=data.subject.organizational_unit,
            country=data.subject.country,
            locality=data.subject.locality,
            province=data.subject.province,
            not_before=not_before,
            not_after=not_after,
            path_length=path_length,
            permitted_dns=tuple(permitted),
            excluded_dns=tuple(excluded),
            ocsp_urls=(data.ocsp_responder_url,) if data.ocsp_responder_url else (),
        )
        pem, certificate = await _sign_subordinate(issuer, request, lent, parent)
        row = IntermediateCa(
            id=row_id,
            issuer_id=issuer_row.id,
            parent_id=parent_row.id if parent_row else None,
            name=data.name,
            state="active",
            issuing=False,
            algorithm=data.algorithm,
            certificate_pem=pem,
            key_store=store.name,
            private_key_enc=key.sealed,
            key_ref=key.reference,
            serial_number=format(certificate.serial_number, "x"),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            path_len_constraint=path_length,
            permitted_dns=permitted,
            excluded_dns=excluded,
            ocsp_responder_url=data.ocsp_responder_url,
            metadata_=data.metadata,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        record(
            session,
            actor,
            "intermediate_ca.create",
            resource_type="intermediate_ca",
            resource_id=row_id,
            details={
                "issuer_id": issuer_row.id,
                "parent_ca_id": row.parent_id,
                "name": data.name,
                "key_store": store.name,
            },
        )
        await session.flush()
    except BaseException:
        # No CA row, no key: a token keeps nothing for a CA that does not exist.
        await _discard(store, key, row_id)
        raise
    return row


async def _discard(store: KeyStore, key: NewKey, row_id: str) -> None:
    try:
        await store.discard(key)
    except ConnectorError as exc:
        _log.error("discarding the key of unfinished CA %s failed: %s", row_id, exc.message)


async def _sign_subordinate(
    issuer: Issuer[Any],
    request: SubordinateRequest,
    lent: SigningAuthority | None,
    parent: x509.Certificate,
) -> tuple[str, x509.Certificate]:
    """The issuer's CA certificate for the request, checked to be signed by ``parent``."""
    try:
        pem = await issuer.sign_subordinate(request, lent)
    except RejectedError as exc:
        raise BadRequest(exc.message) from None
    except ConnectorError as exc:
        raise ServiceUnavailable(f"the issuer could not sign the CA: {exc.message}") from None
    certificate = x509.load_pem_x509_certificate(pem.encode())
    try:
        certificate.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        raise ServiceUnavailable(
            "the issuer returned a CA certificate its parent did not sign"
        ) from None
    return pem, certificate


def _touch(issuer_row: ConnectorInstance) -> None:
    """Change the issuer row: its live instance and OCSP responder are rebuilt on next use."""
    issuer_row.updated_at = utcnow()


async def choose_issuing(
    session: AsyncSession, issuer_row: ConnectorInstance, ca_id: str | None, actor: Actor
) -> IntermediateCa | None:
    """Make ``ca_id`` the CA that signs the issuer's leaves, CRLs and OCSP (None: its own CA).

    CRLs and OCSP follow the choice: certificates issued by the previous CA get their status
    from the new one only if they were issued by it, so switch when the old CA's leaves are
    drained (or revoked) — see docs/security.md.
    """
    chosen: IntermediateCa | None = None
    if ca_id is not None:
        chosen = await session.get(IntermediateCa, ca_id)
        if chosen is None or chosen.issuer_id != issuer_row.id:
            raise BadRequest(f"ca_id {ca_id!r} is not a CA of issuer {issuer_row.id}")
        if chosen.state != "active":
            raise Conflict(f"CA {ca_id} is {chosen.state} and cannot become the issuing CA")
    await session.execute(
        update(IntermediateCa)
        .where(IntermediateCa.issuer_id == issuer_row.id, IntermediateCa.issuing)
        .values(issuing=False, updated_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    await session.flush()
    if chosen is not None:
        chosen.issuing = True
        chosen.updated_at = utcnow()
    _touch(issuer_row)
    record(
        session,
        actor,
        "issuer.issuing_ca",
        resource_type="issuer",
        resource_id=issuer_row.id,
        details={"ca_id": ca_id},
    )
    try:
        await session.flush()
    except IntegrityError:
        # Another request chose a CA for this issuer at the same time (the unique index).
        raise Conflict("the issuing CA was changed concurrently; try again") from None
    return chosen


async def retire(
    session: AsyncSession, row: IntermediateCa, note: str, confirm: bool, actor: Actor
) -> IntermediateCa:
    """Drain first: active → retiring (``confirm`` false) → retired (``confirm`` true).

    A retiring CA signs no new certificates (children or leaves) but still signs CRLs and OCSP
    responses. Retired is refused while a child is not retired, and while the CA is still the
    issuer's issuing CA (its CRL and OCSP would stop).
    """
    if row.state == "retired":
        raise Conflict(f"CA {row.id} is already retired")
    if not confirm:
        if row.state != "active":
            raise Conflict(f"CA {row.id} is already retiring; send confirm: true to finish")
        new_state = "retiring"
    else:
        if row.state != "retiring":
            raise Conflict(f"CA {row.id} is active: retire it with confirm: false first (drain)")
        children = await session.scalars(
            select(IntermediateCa.id).where(
                IntermediateCa.parent_id == row.id, IntermediateCa.state != "retired"
            )
        )
        live = list(children)
        if live:
            raise Conflict(f"CA {row.id} still has CAs that are not retired: {', '.join(live)}")
        if row.issuing:
            raise Conflict(
                f"CA {row.id} still signs its issuer's certificates, CRL and OCSP; choose "
                "another issuing CA first"
            )
        new_state = "retired"
    previous = row.state
    row.state = new_state
    row.retire_note = note or row.retire_note
    row.updated_at = utcnow()
    if row.issuing:
        issuer_row = await session.get(ConnectorInstance, row.issuer_id)
        if issuer_row is not None:
            _touch(issuer_row)
    record(
        session,
        actor,
        f"intermediate_ca.{new_state}",
        resource_type="intermediate_ca",
        resource_id=row.id,
        details={"from": previous, "note": note},
    )
    await session.flush()
    return row
