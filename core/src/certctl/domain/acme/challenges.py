"""Responding to a challenge (RFC 8555 §7.5.1): the server validates, in the background.

The response is answered at once with the challenge ``processing``; the validation runs as a
task of this process and writes its outcome — challenge, authorization and, when it was the
last one, the order — in one transaction. A task lost with its process leaves the challenge
``processing``; the ``acme-gc`` loop returns such challenges to ``pending`` so the client can
respond again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from certctl.db.base import utcnow
from certctl.db.models import AcmeAccount, AcmeAuthorization, AcmeChallenge
from certctl.domain.acme import limits
from certctl.domain.acme.accounts import account_actor
from certctl.domain.acme.jws import key_authorization
from certctl.domain.acme.problems import ACME_ERROR, AcmeProblem
from certctl.domain.acme.validation import Validator
from certctl.domain.audit.service import record

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from certctl.runtime import Runtime

__all__ = ["ChallengeRunner"]

_log = logging.getLogger("certctl.acme")


class ChallengeRunner:
    """Starts validations and keeps their tasks alive until they finish (or the app stops)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.validator = Validator(runtime.settings)
        self._tasks: set[asyncio.Task[None]] = set()

    async def respond(
        self,
        session: AsyncSession,
        account: AcmeAccount,
        challenge: AcmeChallenge,
        authz: AcmeAuthorization,
    ) -> AcmeChallenge:
        """Start validating ``challenge`` unless it is already decided or under way."""
        if challenge.status != "pending" or authz.status != "pending":
            return challenge  # RFC 8555 §7.5.1: a repeated response changes nothing
        if authz.expires_at <= utcnow():
            raise AcmeProblem("malformed", "the authorization has expired")
        await limits.check_validation_attempt(
            session, self.runtime.settings, account_id=account.id, now=utcnow()
        )
        started = await session.execute(
            update(AcmeChallenge)
            .where(AcmeChallenge.id == challenge.id, AcmeChallenge.status == "pending")
            .values(status="processing", attempts=AcmeChallenge.attempts + 1, updated_at=utcnow())
        )
        await session.commit()
        await session.refresh(challenge)
        if started.rowcount == 1:  # type: ignore[attr-defined]
            task = asyncio.create_task(
                self._validate(
                    account_id=account.id,
                    challenge_id=challenge.id,
                    key_auth=key_authorization(challenge.token, account.jwk),
                    kind=challenge.type,
                    identifier_type=authz.identifier_type,
                    identifier=authz.identifier_value,
                    token=challenge.token,
                ),
                name=f"acme-validate-{challenge.id}",
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return challenge

    async def _validate(
        self,
        *,
        account_id: str,
        challenge_id: str,
        key_auth: str,
        kind: str,
        identifier_type: str,
        identifier: str,
        token: str,
    ) -> None:
        error: dict[str, object] | None = None
        try:
            await self.validator.validate(
                challenge_type=kind,
                identifier_type=identifier_type,
                identifier=identifier,
                token=token,
                key_authorization=key_auth,
            )
        except AcmeProblem as problem:
            error = problem.document()
        except Exception:  # noqa: BLE001 - a validator bug must not leave it processing forever
            _log.exception("ACME validation of %s failed unexpectedly", challenge_id)
            error = {"type": ACME_ERROR + "serverInternal", "detail": "validation failed"}
        try:
            await self._record(account_id, challenge_id, error, identifier)
        except Exception:  # noqa: BLE001 - logged; the gc loop frees the challenge
            _log.exception("could not record the ACME validation of %s", challenge_id)

    async def _record(
        self, account_id: str, challenge_id: str, error: dict[str, object] | None, identifier: str
    ) -> None:
        now = utcnow()
        status = "invalid" if error else "valid"
        async with self.runtime.sessions() as session:
            challenge = await session.get(AcmeChallenge, challenge_id)
            if challenge is None or challenge.status != "processing":
                return
            challenge.status = status
            challenge.error = error
            challenge.validated_at = now if error is None else None
            challenge.updated_at = now
            authz = await session.get(AcmeAuthorization, challenge.authz_id)
            if authz is not None and authz.status == "pending":
                authz.status = status
                if error is not None:
                    # RFC 8555 §7.1.6: one failed challenge fails the authorization.
                    await session.execute(
                        update(AcmeChallenge)
                        .where(
                            AcmeChallenge.authz_id == authz.id,
                            AcmeChallenge.id != challenge_id,
                            AcmeChallenge.status == "pending",
                        )
                        .values(status="invalid", updated_at=now)
                    )
            account = await session.get(AcmeAccount, account_id)
            if account is not None:
                record(
                    session,
                    account_actor(account),
                    "acme.challenge.validated" if error is None else "acme.challenge.failed",
                    resource_type="acme_challenge",
                    resource_id=challenge_id,
                    outcome="success" if error is None else "failure",
                    details={"type": challenge.type, "identifier": identifier, "error": error},
                )
            await session.commit()

    async def wait_idle(self) -> None:
        """Wait for the validations in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def challenges_of(session: AsyncSession, authz_id: str) -> list[AcmeChallenge]:
    """An authorization's challenges in a stable order."""
    rows = await session.scalars(
        select(AcmeChallenge).where(AcmeChallenge.authz_id == authz_id).order_by(AcmeChallenge.type)
    )
    return list(rows)
