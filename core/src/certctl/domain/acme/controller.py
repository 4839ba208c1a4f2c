"""The ACME routes, each under ``/acme/profile/{profile_id}/…`` and the shorthand ``/acme/…``.

Every route is public (ACME authenticates by JWS, not API key) and answers through
:func:`_answer`, which turns any :class:`AcmeProblem` — and any other failure — into an RFC 8555
problem document carrying a fresh ``Replay-Nonce`` and the directory ``Link``, so clients can
retry ``badNonce`` at once and no exception leaves as a bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec
from litestar import Controller, Request, Response, get, head, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from certctl.db.base import utcnow
from certctl.db.models import AcmeAuthorization, AcmeChallenge, AcmeOrder, Job
from certctl.domain.acme import ari
from certctl.domain.acme.accounts import account_object, change_key, new_account, update_account
from certctl.domain.acme.challenges import ChallengeRunner, challenges_of
from certctl.domain.acme.directory import Directory, resolve_directory
from certctl.domain.acme.issuance import CHAIN_MEDIA_TYPE, certificate_chain, finalize, revoke
from certctl.domain.acme.nonces import new_nonce
from certctl.domain.acme.orders import (
    authz_object,
    challenge_object,
    create_order,
    order_authz_ids,
    order_object,
    refresh_order,
)
from certctl.domain.acme.problems import AcmeProblem
from certctl.domain.acme.transport import Signed, verify_request
from certctl.lib.ratelimit_http import client_address
from certctl.runtime import Runtime

__all__ = ["ACME_PATHS", "AcmeController"]

_log = logging.getLogger("certctl.acme")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROFILE = "/acme/profile/{profile_id:str}"
SHORT = "/acme"
ACME_PATHS = (PROFILE, SHORT)
PROCESSING_RETRY_AFTER = "2"
APPROVAL_RETRY_AFTER = "60"

Handler = Callable[[Runtime, AsyncSession, Directory], Awaitable["Reply"]]


class Reply(msgspec.Struct, kw_only=True):
    """What a handler answers; transport headers are added by :func:`_answer`."""

    body: Any = None
    status: int = 200
    location: str | None = None
    media_type: str = "application/json"
    headers: dict[str, str] = msgspec.field(default_factory=dict)


def _paths(suffix: str) -> list[str]:
    return [f"{PROFILE}{suffix}", f"{SHORT}{suffix}"]


def _profile_id(request: Request[Any, Any, Any]) -> str | None:
    value = request.path_params.get("profile_id")
    return str(value) if value is not None else None


async def _answer(
    request: Request[Any, Any, Any], handler: Handler, *, nonce: bool = True
) -> Response[bytes]:
    """Run ``handler`` and add the transport headers.

    ``nonce=False`` for the directory and renewal-info: RFC 8555 §6.5 asks for a nonce on
    responses to POSTs (and new-nonce) and problems, and each one is a database write.
    """
    runtime: Runtime = request.app.state.runtime
    directory_url: str | None = None
    try:
        async with runtime.sessions() as session:
            directory = await resolve_directory(session, runtime.settings, _profile_id(request))
            directory_url = directory.url("directory")
            reply = await handler(runtime, session, directory)
    except AcmeProblem as problem:
        reply = _problem_reply(problem)
    except HTTPException as exc:  # e.g. a body over CERTCTL_MAX_BODY_SIZE
        reply = _problem_reply(AcmeProblem("malformed", str(exc.detail), status=exc.status_code))
    except Exception:  # noqa: BLE001 - logged, answered as serverInternal
        _log.exception("ACME request %s %s failed", request.method, request.url.path)
        reply = _problem_reply(AcmeProblem("serverInternal", "the server failed; try again"))
    headers = {"Cache-Control": "no-store", **reply.headers}
    try:
        if nonce or reply.status >= 400:  # problems always carry one (badNonce retries)
            headers["Replay-Nonce"] = await new_nonce(runtime)
    except Exception:  # noqa: BLE001 - database down: answer without a nonce, not at all
        _log.exception("could not issue an ACME nonce")
    if directory_url is not None:
        # One Link header: handlers may add rel="up" (RFC 8555 §7.5.1), and clients such as
        # lego read only the first Link header they are given.
        index = f'<{directory_url}>;rel="index"'
        headers["Link"] = f"{index}, {headers['Link']}" if "Link" in headers else index
    if reply.location is not None:
        headers["Location"] = reply.location
    if isinstance(reply.body, bytes):
        content = reply.body
    elif isinstance(reply.body, str):
        content = reply.body.encode()
    elif reply.body is None:
        content = b""
    else:
        content = msgspec.json.encode(reply.body)
    return Response(
        content=content,
        status_code=reply.status,
        media_type=reply.media_type,
        headers=headers,
    )


def _problem_reply(problem: AcmeProblem) -> Reply:
    return Reply(
        body=problem.document(),
        status=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


def _acme(request: Request[Any, Any, Any]) -> ChallengeRunner:
    runner: ChallengeRunner = request.app.state.acme
    return runner


async def _signed(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    session: AsyncSession,
    directory: Directory,
    *,
    key: str = "kid",
) -> Signed:
    body = await request.body()
    return await verify_request(
        runtime,
        session,
        directory,
        url=runtime.settings.effective_public_url + request.url.path,
        content_type=request.headers.get("content-type", ""),
        body=body,
        key=key,
    )


def _client_ip(request: Request[Any, Any, Any], runtime: Runtime) -> str:
    return client_address(request.scope, runtime.rate_limits.trusted_proxies)


async def _own_order(session: AsyncSession, signed: Signed, order_id: FromPath[str]) -> AcmeOrder:
    order = await session.get(AcmeOrder, order_id)
    if order is None or order.account_id != signed.require_account().id:
        raise AcmeProblem("malformed", "no such order for this account", status=404)
    return order


async def _order_reply(
    session: AsyncSession, directory: Directory, order: AcmeOrder, *, status: int = 200
) -> Reply:
    order = await refresh_order(session, order, utcnow())
    headers: dict[str, str] = {}
    if order.status == "processing":
        headers["Retry-After"] = PROCESSING_RETRY_AFTER
        if order.job_id:
            job = await session.get(Job, order.job_id)
            if job is not None and job.status == "awaiting_approval":
                headers["Retry-After"] = APPROVAL_RETRY_AFTER
    return Reply(
        body=order_object(directory, order, await order_authz_ids(session, order.id)),
        status=status,
        location=directory.url("order", order.id),
        headers=headers,
    )


class AcmeController(Controller):
    """RFC 8555 and RFC 9773 resources of every ACME-enabled profile."""

    tags = ["ACME"]
    include_in_schema = True

    @get(_paths("/directory"), opt={"public": True})
    async def directory(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        async def handle(runtime: Runtime, _: AsyncSession, directory: Directory) -> Reply:
            return Reply(body=directory.document(runtime.settings))

        return await _answer(request, handle, nonce=False)

    @head(_paths("/new-nonce"), opt={"public": True}, status_code=200)
    async def new_nonce_head(self, request: Request[Any, Any, Any]) -> Response[None]:
        async def handle(*_: Any) -> Reply:
            return Reply(status=200)

        return cast("Response[None]", await _answer(request, handle))  # the body is empty

    @get(_paths("/new-nonce"), opt={"public": True}, status_code=204)
    async def new_nonce_get(self, request: Request[Any, Any, Any]) -> Response[None]:
        async def handle(*_: Any) -> Reply:
            return Reply(status=204)

        return cast("Response[None]", await _answer(request, handle))  # the body is empty

    @post(_paths("/new-account"), opt={"public": True})
    async def new_account(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            signed = await _signed(request, runtime, session, directory, key="jwk")
            account, created = await new_account(
                runtime, session, directory, signed, client_ip=_client_ip(request, runtime)
            )
            return Reply(
                body=account_object(directory, account),
                status=201 if created else 200,
                location=directory.account_url(account.id),
            )

        return await _answer(request, handle)

    @post(_paths("/account/{account_id:str}"), opt={"public": True})
    async def account(
        self, request: Request[Any, Any, Any], account_id: FromPath[str]
    ) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            signed = await _signed(request, runtime, session, directory)
            account = signed.require_account()
            if account.id != account_id:
                raise AcmeProblem("unauthorized", "the kid is not this account")
            account = await update_account(session, account, signed.jws.json())
            return Reply(
                body=account_object(directory, account),
                location=directory.account_url(account.id),
            )

        return await _answer(request, handle)

    @post(_paths("/account/{account_id:str}/orders"), opt={"public": True})
    async def account_orders(
        self, request: Request[Any, Any, Any], account_id: FromPath[str]
    ) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            signed = await _signed(request, runtime, session, directory)
            if signed.require_account().id != account_id:
                raise AcmeProblem("unauthorized", "the kid is not this account")
            ids = await session.scalars(
                select(AcmeOrder.id)
                .where(
                    AcmeOrder.account_id == account_id,
                    AcmeOrder.status.in_(("pending", "ready", "processing", "valid")),
                )
                .order_by(AcmeOrder.created_at.desc())
                .limit(1000)
            )
            return Reply(body={"orders": [directory.url("order", i) for i in ids]})

        return await _answer(request, handle)

    @post(_paths("/key-change"), opt={"public": True})
    async def key_change(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            signed = await _signed(request, runtime, session, directory)
            account = await change_key(session, directory, signed)
            return Reply(
                body=account_object(directory, account),
                location=directory.account_url(account.id),
            )

        return await _answer(request, handle)

    @post(_paths("/new-order"), opt={"public": True})
    async def new_order(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            signed = await _signed(request, runtime, session, directory)
            order = await create_order(
                runtime,
                session,
                directory,
                signed.require_account(),
                signed.payload(),
                client_ip=_client_ip(request, runtime),
            )
            return await _order_reply(session, directory, order, status=201)

        return await _answer(request, handle)

    @post(_paths("/order/{order_id:str}"), opt={"public": True})
    async def order(
        self, request: Request[Any, Any, Any], order_id: FromPath[str]
    ) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            signed = await _signed(request, runtime, session, directory)
            return await _order_reply(
                session, directory, await _own_order(session, signed, order_id)
            )

        return await _answer(request, handle)

    @post(_paths("/order/{order_id:str}/finalize"), opt={"public": True})
    async def finalize(
        self, request: Request[Any, Any, Any], order_id: FromPath[str]
    ) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            signed = await _signed(request, runtime, session, directory)
            order = await refresh_order(
                session, await _own_order(session, signed, order_id), utcnow()
            )
            order = await finalize(
                runtime, session, directory, signed.require_account(), order, signed.payload()
            )
            return await _order_reply(session, directory, order)

        return await _answer(request, handle)

    @post(_paths("/authz/{authz_id:str}"), opt={"public": True})
    async def authz(
        self, request: Request[Any, Any, Any], authz_id: FromPath[str]
    ) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            signed = await _signed(request, runtime, session, directory)
            authz = await session.get(AcmeAuthorization, authz_id)
            if authz is None or authz.account_id != signed.require_account().id:
                raise AcmeProblem("malformed", "no such authorization for this account", status=404)
            payload = signed.jws.json()
            if payload is not None:
                if payload != {"status": "deactivated"}:
                    raise AcmeProblem("malformed", "an authorization can only be deactivated")
                if authz.status in ("pending", "valid"):
                    authz.status = "deactivated"
                    await session.commit()
            elif authz.status == "pending" and authz.expires_at <= utcnow():
                authz.status = "expired"
                await session.commit()
            challenges = await challenges_of(session, authz.id)
            return Reply(body=authz_object(directory, authz, challenges))

        return await _answer(request, handle)

    @post(_paths("/challenge/{challenge_id:str}"), opt={"public": True})
    async def challenge(
        self, request: Request[Any, Any, Any], challenge_id: FromPath[str]
    ) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            signed = await _signed(request, runtime, session, directory)
            account = signed.require_account()
            challenge = await session.get(AcmeChallenge, challenge_id)
            authz = await session.get(AcmeAuthorization, challenge.authz_id) if challenge else None
            if challenge is None or authz is None or authz.account_id != account.id:
                raise AcmeProblem("malformed", "no such challenge for this account", status=404)
            if signed.jws.json() is not None:  # {} starts validation; POST-as-GET only reads
                challenge = await _acme(request).respond(session, account, challenge, authz)
            return Reply(
                body=challenge_object(directory, challenge),
                headers={"Link": f'<{directory.url("authz", authz.id)}>;rel="up"'},
            )

        return await _answer(request, handle)

    @post(_paths("/cert/{version_id:str}"), opt={"public": True})
    async def certificate(
        self, request: Request[Any, Any, Any], version_id: FromPath[str]
    ) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            signed = await _signed(request, runtime, session, directory)
            if signed.jws.json() is not None:
                raise AcmeProblem("malformed", "fetch a certificate with POST-as-GET")
            chain = await certificate_chain(session, signed.require_account(), version_id)
            return Reply(body=chain, media_type=CHAIN_MEDIA_TYPE)

        return await _answer(request, handle)

    @post(_paths("/revoke-cert"), opt={"public": True})
    async def revoke_cert(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            signed = await _signed(request, runtime, session, directory, key="either")
            await revoke(
                runtime,
                session,
                directory,
                account=signed.account,
                jwk=signed.jws.jwk,
                payload=signed.payload(),
            )
            return Reply(status=200)

        return await _answer(request, handle)

    @get(_paths("/renewal-info/{cert_id:str}"), opt={"public": True})
    async def renewal_info(
        self, request: Request[Any, Any, Any], cert_id: FromPath[str]
    ) -> Response[bytes]:
        async def handle(runtime: Runtime, session: AsyncSession, directory: Directory) -> Reply:
            if not runtime.settings.acme_ari_enabled:
                raise AcmeProblem("malformed", "renewal information is disabled", status=404)
            window = await ari.renewal_info(
                session, runtime.settings, profile_id=directory.profile.id, cert_id=cert_id
            )
            body: dict[str, Any] = {
                "suggestedWindow": {
                    "start": window.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end": window.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            }
            if window.explanation_url:
                body["explanationURL"] = window.explanation_url
            return Reply(
                body=body,
                headers={"Retry-After": str(runtime.settings.acme_ari_poll_interval_seconds)},
            )

        return await _answer(request, handle, nonce=False)
