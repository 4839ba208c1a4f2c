"""ACME accounts (RFC 8555 §7.3): registration, lookup, contacts, deactivation, key rollover."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import new_id, utcnow
from certctl.db.models import AcmeAccount
from certctl.domain.acme.directory import Directory, eab_required
from certctl.domain.acme.eab import bind_eab_key, eab_hmac
from certctl.domain.acme.jws import eab_key_id, thumbprint, verify_eab, verify_key_change
from certctl.domain.acme.problems import AcmeProblem
from certctl.domain.acme.transport import Signed
from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = [
    "account_actor",
    "account_object",
    "change_key",
    "new_account",
    "update_account",
]

_MAILTO = re.compile(r"^mailto:[^@\s,;?]+@[^@\s,;?]+\.[^@\s,;?]+$")
MAX_CONTACTS = 5


def account_actor(account: AcmeAccount) -> Actor:
    """The audit actor of an account's requests."""
    return Actor(name=account.id, type="AcmeAccount")


def account_object(directory: Directory, account: AcmeAccount) -> dict[str, Any]:
    """The account resource (RFC 8555 §7.1.2)."""
    body: dict[str, Any] = {
        "status": account.status,
        "contact": list(account.contact),
        "orders": directory.url("account", account.id, "orders"),
    }
    if account.eab_key_id:
        body["externalAccountBinding"] = {"kid": account.eab_key_id}
    return body


def _contacts(value: Any) -> list[str]:
    """Only ``mailto:`` contacts, one address each (RFC 8555 §7.3)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise AcmeProblem("malformed", "contact must be an array of strings")
    if len(value) > MAX_CONTACTS:
        raise AcmeProblem("invalidContact", f"at most {MAX_CONTACTS} contacts")
    for contact in value:
        if not contact.startswith("mailto:"):
            raise AcmeProblem("unsupportedContact", f"only mailto: contacts: {contact[:80]!r}")
        if not _MAILTO.match(contact):
            raise AcmeProblem("invalidContact", f"not one e-mail address: {contact[:80]!r}")
    return list(dict.fromkeys(value))


async def new_account(
    runtime: Runtime,
    session: AsyncSession,
    directory: Directory,
    signed: Signed,
    *,
    client_ip: str,
) -> tuple[AcmeAccount, bool]:
    """Find or create the account of the request's ``jwk``; True when it was created."""
    key = signed.jws.jwk
    assert key is not None
    payload = signed.payload()
    print_ = thumbprint(key)
    existing = await session.scalar(
        select(AcmeAccount).where(
            AcmeAccount.profile_id == directory.profile.id, AcmeAccount.thumbprint == print_
        )
    )
    if existing is not None:
        # RFC 8555 §7.3.1: the existing account, whatever else the request asked.
        return existing, False
    if payload.get("onlyReturnExisting") is True:
        raise AcmeProblem("accountDoesNotExist", "no account is registered for this key")
    if directory.document(runtime.settings)["meta"].get("termsOfService") and (
        payload.get("termsOfServiceAgreed") is not True
    ):
        raise AcmeProblem("userActionRequired", "the terms of service must be agreed to")
    contact = _contacts(payload.get("contact"))
    binding = payload.get("externalAccountBinding")
    kid: str | None = None
    if binding is not None:
        kid = eab_key_id(binding, url=directory.url("new-account"))
        hmac_key = await eab_hmac(session, runtime, kid, profile_id=directory.profile.id)
        verify_eab(binding, hmac_key=hmac_key, account_key=key)
    elif eab_required(directory.profile, runtime.settings):
        raise AcmeProblem(
            "externalAccountRequired", "this directory requires an External Account Binding"
        )
    now = utcnow()
    account = AcmeAccount(
        id=new_id("acct"),
        profile_id=directory.profile.id,
        jwk=key,
        thumbprint=print_,
        status="valid",
        contact=contact,
        eab_key_id=kid,
        created_ip=client_ip,
        created_at=now,
        updated_at=now,
    )
    session.add(account)
    try:
        await session.flush()
    except IntegrityError:
        # Two registrations of one key raced; the other one won, so answer with its account.
        await session.rollback()
        winner = await session.scalar(
            select(AcmeAccount).where(
                AcmeAccount.profile_id == directory.profile.id, AcmeAccount.thumbprint == print_
            )
        )
        if winner is None:
            raise
        return winner, False
    if kid is not None:
        await bind_eab_key(session, kid, account.id)
    record(
        session,
        account_actor(account),
        "acme.account.create",
        resource_type="acme_account",
        resource_id=account.id,
        details={
            "profile_id": directory.profile.id,
            "thumbprint": print_,
            "eab_key_id": kid,
            "contact": contact,
        },
    )
    await session.commit()
    return account, True


async def update_account(
    session: AsyncSession, account: AcmeAccount, payload: dict[str, Any] | None
) -> AcmeAccount:
    """POST-as-GET (``payload`` None), contact update, or deactivation (RFC 8555 §7.3.2, §7.3.6)."""
    if payload is None:
        return account
    changed: list[str] = []
    if "contact" in payload:
        account.contact = _contacts(payload["contact"])
        changed.append("contact")
    status = payload.get("status")
    if status is not None:
        if status != "deactivated":
            raise AcmeProblem("malformed", "an account's status can only become deactivated")
        account.status = "deactivated"
        changed.append("status")
    if changed:
        account.updated_at = utcnow()
        record(
            session,
            account_actor(account),
            "acme.account.deactivate" if "status" in changed else "acme.account.update",
            resource_type="acme_account",
            resource_id=account.id,
            details={"fields": changed},
        )
        await session.commit()
    return account


async def change_key(session: AsyncSession, directory: Directory, signed: Signed) -> AcmeAccount:
    """Key rollover (RFC 8555 §7.3.5); a key already registered in the directory is a 409."""
    account = signed.require_account()
    new_key = verify_key_change(
        signed.jws, account_url=directory.account_url(account.id), old_key=account.jwk
    )
    new_print = thumbprint(new_key)
    taken = await session.scalar(
        select(AcmeAccount.id).where(
            AcmeAccount.profile_id == directory.profile.id, AcmeAccount.thumbprint == new_print
        )
    )
    if taken is not None:
        raise AcmeProblem(
            "malformed",
            "the new key is already registered to an account",
            status=409,
            headers={"Location": directory.account_url(taken)},
        )
    # Compare-and-set on the old thumbprint: of two rollovers racing, one wins.
    result = await session.execute(
        update(AcmeAccount)
        .where(AcmeAccount.id == account.id, AcmeAccount.thumbprint == account.thumbprint)
        .values(jwk=new_key, thumbprint=new_print, updated_at=utcnow())
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        await session.rollback()
        raise AcmeProblem("malformed", "the account key changed meanwhile", status=409)
    record(
        session,
        account_actor(account),
        "acme.account.key_change",
        resource_type="acme_account",
        resource_id=account.id,
        details={"old_thumbprint": account.thumbprint, "new_thumbprint": new_print},
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise AcmeProblem("malformed", "the new key is already registered", status=409) from None
    await session.refresh(account)
    return account
