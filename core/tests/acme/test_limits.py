"""ACME rate limits, counted in the database: 429 ``rateLimited`` with ``Retry-After``.

End-to-end tests run a second app with low limits on the test's database (the profile is made
through the default ``client``); the counting rules are checked on seeded rows, where ``now``
is fixed, so each ``Retry-After`` is exact.
"""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from jwcrypto import jwk, jws
from sqlalchemy import update

from certctl.db.base import new_id, utcnow
from certctl.db.models import AcmeAccount, AcmeAuthorization, AcmeChallenge, AcmeOrder
from certctl.domain.acme import limits
from certctl.domain.acme.problems import ACME_ERROR, AcmeProblem


def _limited(r: Any) -> tuple[str, int]:
    """(detail, Retry-After) of a rateLimited answer."""
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == ACME_ERROR + "rateLimited", r.text
    assert r.headers["Replay-Nonce"]
    return r.json()["detail"], int(r.headers["Retry-After"])


async def _account(http: Any, url: str, signer: Any, acme_client: Any, eab: Any = None) -> Any:
    acme = await acme_client(http, url, signer()).start()
    extra: dict[str, Any] = {}
    if eab is not None:
        token = jws.JWS(json.dumps(acme.key.public_jwk).encode())
        token.add_signature(
            jwk.JWK(kty="oct", k=eab["hmac_key"]),
            alg="HS256",
            protected=json.dumps(
                {"alg": "HS256", "kid": eab["id"], "url": acme.directory["newAccount"]}
            ),
        )
        extra["externalAccountBinding"] = json.loads(token.serialize(compact=False))
    r = await acme.register(**extra)
    assert r.status_code == 201, r.text
    return acme


async def _order(acme: Any, name: str = "www.limits.test") -> Any:
    return await acme.post(
        acme.directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}
    )


async def test_orders_per_hour_per_account(
    client, app_factory, acme_setup, admin_headers, signer, acme_client
):
    url, _, profile_id = await acme_setup(acme_auth_mode="trust_authenticated")
    app = await app_factory(acme_orders_per_hour_per_account=2)
    eab = [
        (
            await client.post(
                "/api/v1/acme/eab-keys", json={"profile_id": profile_id}, headers=admin_headers
            )
        ).json()
        for _ in range(2)
    ]
    acme = await _account(app, url, signer, acme_client, eab[0])
    for _ in range(2):
        assert (await _order(acme)).status_code == 201
    detail, retry_after = _limited(await _order(acme))
    assert "this account" in detail
    assert 0 < retry_after <= 3600
    other = await _account(app, url, signer, acme_client, eab[1])
    assert (await _order(other)).status_code == 201, "the budget is per account"


async def test_orders_per_hour_per_address(client, app_factory, acme_setup, signer, acme_client):
    url, _, _ = await acme_setup()
    app = await app_factory(acme_orders_per_hour_per_ip=2)
    first = await _account(app, url, signer, acme_client)
    second = await _account(app, url, signer, acme_client)
    assert (await _order(first)).status_code == 201
    assert (await _order(second)).status_code == 201
    detail, retry_after = _limited(await _order(second))
    assert "this address" in detail
    assert 0 < retry_after <= 3600


async def test_open_orders_per_account(client, app_factory, acme_setup, signer, acme_client):
    url, _, _ = await acme_setup()  # challenge mode: orders stay pending
    app = await app_factory(acme_pending_orders_per_account=1)
    acme = await _account(app, url, signer, acme_client)
    r = await _order(acme)
    assert r.status_code == 201 and r.json()["status"] == "pending"
    detail, retry_after = _limited(await _order(acme))
    assert "open orders" in detail
    assert retry_after == 60
    order_id = r.headers["Location"].rsplit("/", 1)[1]
    async with app.runtime.sessions() as session:
        await session.execute(
            update(AcmeOrder)
            .where(AcmeOrder.id == order_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    assert (await _order(acme)).status_code == 201, "an expired order is not open"


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: an http-01 validation against it fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_failed_validations_per_account(
    client, app_factory, acme_setup, signer, acme_client, closed_port
):
    url, _, _ = await acme_setup()
    app = await app_factory(
        acme_failed_validations_per_hour_per_account=1,
        acme_http01_port=closed_port,
        acme_validation_allow_loopback=True,
    )
    acme = await _account(app, url, signer, acme_client)

    async def http01(order: Any) -> dict[str, Any]:
        authz = (await acme.post(order.json()["authorizations"][0], None)).json()
        return dict(next(c for c in authz["challenges"] if c["type"] == "http-01"))

    challenge = await http01(await _order(acme, "localhost"))
    assert (await acme.post(challenge["url"], {})).status_code == 200
    await app.app.state.acme.wait_idle()
    assert (await acme.post(challenge["url"], None)).json()["status"] == "invalid"

    second = await http01(await _order(acme, "localhost"))
    detail, retry_after = _limited(await acme.post(second["url"], {}))
    assert "failed validations" in detail
    assert 0 < retry_after <= 3600
    assert (await acme.post(second["url"], None)).json()["status"] == "pending"


# --- the counting rules, on seeded rows ---------------------------------------------------


async def _seed_account(session: Any, profile_id: str) -> str:
    account = AcmeAccount(
        id=new_id("acct"), profile_id=profile_id, jwk={}, thumbprint=new_id("tp"), contact=[]
    )
    session.add(account)
    await session.flush()
    return account.id


def _seed_order(
    account_id: str, profile_id: str, *, now: Any, age: timedelta, **values: Any
) -> AcmeOrder:
    created = now - age
    fields: dict[str, Any] = {
        "status": "valid",
        "identifiers": [{"type": "dns", "value": "seed.limits.test"}],
        "expires_at": created + timedelta(days=1),
        "client_ip": "192.0.2.1",
        **values,
    }
    return AcmeOrder(
        id=new_id("ord"),
        account_id=account_id,
        profile_id=profile_id,
        created_at=created,
        updated_at=created,
        **fields,
    )


async def _refusal(call: Any) -> tuple[str, int]:
    with pytest.raises(AcmeProblem) as caught:
        await call
    assert caught.value.kind == "rateLimited"
    return caught.value.detail, int(caught.value.headers["Retry-After"])


async def test_hourly_counts_and_retry_after(client, acme_setup):
    _, _, profile_id = await acme_setup()
    settings = msgspec.structs.replace(
        client.runtime.settings, acme_orders_per_hour_per_account=2, acme_orders_per_hour_per_ip=3
    )
    now = utcnow()
    async with client.runtime.sessions() as session:
        mine, theirs = (
            await _seed_account(session, profile_id),
            await _seed_account(session, profile_id),
        )
        session.add_all(
            [
                _seed_order(
                    mine, profile_id, now=now, age=timedelta(minutes=61)
                ),  # out of the window
                _seed_order(mine, profile_id, now=now, age=timedelta(minutes=50)),
                _seed_order(mine, profile_id, now=now, age=timedelta(minutes=10)),
                _seed_order(
                    theirs, profile_id, now=now, age=timedelta(minutes=40), client_ip="192.0.2.9"
                ),
            ]
        )
        await session.commit()

        def check(account: str, ip: str) -> Any:
            return limits.check_new_order(
                session, settings, account_id=account, client_ip=ip, now=now
            )

        detail, retry_after = await _refusal(check(mine, "198.51.100.7"))
        assert "account" in detail
        assert retry_after == 600, "the order of 50 minutes ago leaves the hour in 10 minutes"
        await check(theirs, "192.0.2.9")  # one order this hour: within both budgets
        session.add(_seed_order(theirs, profile_id, now=now, age=timedelta(minutes=30)))
        await session.commit()
        detail, retry_after = await _refusal(check("acct-new", "192.0.2.1"))
        assert "address" in detail, "any account's orders from 192.0.2.1 count"
        assert retry_after == 600, "192.0.2.1: 50, 30 and 10 minutes ago; the first leaves"


async def test_open_orders_count_only_unexpired_open_ones(client, acme_setup):
    _, _, profile_id = await acme_setup()
    settings = msgspec.structs.replace(client.runtime.settings, acme_pending_orders_per_account=2)
    now = utcnow()
    async with client.runtime.sessions() as session:
        account = await _seed_account(session, profile_id)
        old = timedelta(days=2)  # outside the hourly window: only the open-order rule applies
        session.add_all(
            [
                _seed_order(
                    account, profile_id, now=now, age=old, status="pending", expires_at=now + old
                ),
                _seed_order(account, profile_id, now=now, age=old, status="valid"),
                _seed_order(account, profile_id, now=now, age=old, status="invalid"),
                _seed_order(
                    account,
                    profile_id,
                    now=now,
                    age=old,
                    status="ready",
                    expires_at=now - timedelta(minutes=1),
                ),
            ]
        )
        await session.commit()
        await limits.check_new_order(session, settings, account_id=account, client_ip="", now=now)
        session.add(
            _seed_order(
                account, profile_id, now=now, age=old, status="processing", expires_at=now + old
            )
        )
        await session.commit()
        detail, retry_after = await _refusal(
            limits.check_new_order(session, settings, account_id=account, client_ip="", now=now)
        )
        assert "2 open orders" in detail
        assert retry_after == 60


async def test_failed_validation_counts(client, acme_setup):
    _, _, profile_id = await acme_setup()
    settings = msgspec.structs.replace(
        client.runtime.settings, acme_failed_validations_per_hour_per_account=2
    )
    error = {"type": ACME_ERROR + "connection", "detail": "refused"}
    async with client.runtime.sessions() as session:
        mine, theirs = (
            await _seed_account(session, profile_id),
            await _seed_account(session, profile_id),
        )
        now = utcnow()

        async def challenge(account: str, *, age: timedelta, failed: bool = True) -> None:
            order = _seed_order(account, profile_id, now=now, age=age, status="invalid")
            authz = AcmeAuthorization(
                id=new_id("authz"),
                order_id=order.id,
                account_id=account,
                identifier_type="dns",
                identifier_value="seed.limits.test",
                status="invalid",
                expires_at=now + timedelta(days=1),
            )
            session.add(order)
            await session.flush()  # no ORM relationships: insert parents first
            session.add(authz)
            await session.flush()
            session.add(
                AcmeChallenge(
                    id=new_id("chall"),
                    authz_id=authz.id,
                    type="http-01",
                    token=new_id("tok"),
                    status="invalid",
                    # Not tried: invalidated beside a failed one (RFC 8555 §7.1.6).
                    attempts=1 if failed else 0,
                    error=error if failed else None,
                    updated_at=now - age,
                )
            )

        await challenge(mine, age=timedelta(minutes=30))
        await challenge(mine, age=timedelta(minutes=5), failed=False)
        await challenge(mine, age=timedelta(hours=2))
        await challenge(theirs, age=timedelta(minutes=20))
        await session.commit()

        def check(account: str) -> Any:
            return limits.check_validation_attempt(session, settings, account_id=account, now=now)

        await check(mine)  # one failure this hour counts
        await challenge(mine, age=timedelta(minutes=45))
        await session.commit()
        detail, retry_after = await _refusal(check(mine))
        assert "failed validations" in detail
        assert retry_after == 900, "the failure of 45 minutes ago leaves the hour first"
        await check(theirs)
