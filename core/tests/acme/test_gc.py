"""The ``acme-gc`` loop: each rule on seeded rows, then a second run that changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from certctl.db.base import new_id, utcnow
from certctl.db.models import (
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeEabKey,
    AcmeNonce,
    AcmeOrder,
)
from certctl.domain.acme.gc import RETENTION, collect
from certctl.domain.acme.problems import ACME_ERROR
from certctl.domain.acme.validation import validation_deadline

MINUTE = timedelta(minutes=1)


async def test_collect_applies_each_rule_once(client, acme_setup):
    _, _, profile_id = await acme_setup()
    runtime = client.runtime
    now = utcnow()
    ids: dict[str, str] = {}

    async with runtime.sessions() as session:

        async def add(row: Any, name: str) -> None:
            session.add(row)
            await session.flush()  # no ORM relationships: parents go in first
            ids[name] = row.id if hasattr(row, "id") else row.value

        await add(
            AcmeAccount(
                id=new_id("acct"), profile_id=profile_id, jwk={}, thumbprint="tp", contact=[]
            ),
            "account",
        )
        await add(
            AcmeEabKey(
                id=new_id("eab"),
                profile_id=profile_id,
                hmac_enc="sealed",
                account_id=ids["account"],
                bound_at=now - timedelta(days=400),
                created_at=now - timedelta(days=400),
            ),
            "eab",
        )
        await add(AcmeNonce(value=new_id("n-old"), expires_at=now - MINUTE), "nonce_old")
        await add(AcmeNonce(value=new_id("n-new"), expires_at=now + MINUTE), "nonce_new")

        async def order(name: str, status: str, *, expires: timedelta, age: timedelta) -> None:
            await add(
                AcmeOrder(
                    id=new_id("ord"),
                    account_id=ids["account"],
                    profile_id=profile_id,
                    status=status,
                    identifiers=[{"type": "dns", "value": "gc.acme.test"}],
                    expires_at=now + expires,
                    created_at=now - age,
                    updated_at=now - age,
                ),
                name,
            )

        await order("pending_expired", "pending", expires=-MINUTE, age=timedelta(days=1))
        await order("ready_expired", "ready", expires=-MINUTE, age=timedelta(days=1))
        await order("pending_live", "pending", expires=timedelta(hours=1), age=MINUTE)
        await order("processing", "processing", expires=-MINUTE, age=timedelta(days=1))
        await order("dead", "invalid", expires=-RETENTION, age=RETENTION + timedelta(days=1))
        await order("recent", "invalid", expires=-MINUTE, age=RETENTION - timedelta(days=1))
        await order("valid_old", "valid", expires=-RETENTION, age=RETENTION * 3)

        async def authz(name: str, order_name: str, status: str, expires: timedelta) -> None:
            await add(
                AcmeAuthorization(
                    id=new_id("authz"),
                    order_id=ids[order_name],
                    account_id=ids["account"],
                    identifier_type="dns",
                    identifier_value="gc.acme.test",
                    status=status,
                    expires_at=now + expires,
                ),
                name,
            )

        await authz("authz_expired", "pending_live", "pending", -MINUTE)
        await authz("authz_valid", "pending_live", "valid", -MINUTE)
        await authz("authz_live", "pending_live", "pending", timedelta(hours=1))
        await authz("authz_dead", "dead", "invalid", -RETENTION)
        await authz("authz_recent", "recent", "invalid", -MINUTE)

        async def challenge(name: str, authz_name: str, status: str, age: timedelta) -> None:
            await add(
                AcmeChallenge(
                    id=new_id("chall"),
                    authz_id=ids[authz_name],
                    type="http-01",
                    token=new_id("tok"),
                    status=status,
                    attempts=1,
                    updated_at=now - age,
                ),
                name,
            )

        lost_after = timedelta(seconds=validation_deadline(runtime.settings))
        await challenge("lost", "authz_live", "processing", lost_after + 5 * MINUTE)
        await challenge("running", "authz_live", "processing", timedelta(seconds=1))
        await challenge("dead_challenge", "authz_dead", "invalid", RETENTION)
        await challenge("recent_challenge", "authz_recent", "invalid", RETENTION)
        await session.commit()

    counts = await collect(runtime)
    assert counts == {
        "nonces": 1,
        "orders_expired": 2,
        "authorizations_expired": 1,
        "validations_lost": 1,
        "orders_deleted": 1,
    }

    async with runtime.sessions() as session:

        async def status(model: Any, name: str) -> str | None:
            row = await session.get(model, ids[name])
            return None if row is None else str(row.status)

        for name in ("pending_expired", "ready_expired"):
            expired = await session.get(AcmeOrder, ids[name])
            assert expired is not None and expired.status == "invalid"
            assert expired.error == {
                "type": ACME_ERROR + "malformed",
                "detail": "the order expired",
            }
        assert await status(AcmeOrder, "pending_live") == "pending"
        assert await status(AcmeOrder, "processing") == "processing", "its job decides"
        assert await status(AcmeOrder, "dead") is None
        assert await status(AcmeAuthorization, "authz_dead") is None
        assert await status(AcmeChallenge, "dead_challenge") is None
        assert await status(AcmeOrder, "recent") == "invalid", "kept for the retention"
        assert await status(AcmeAuthorization, "authz_recent") == "invalid"
        assert await status(AcmeChallenge, "recent_challenge") == "invalid"
        assert await status(AcmeOrder, "valid_old") == "valid", "ownership of its certificate"
        assert await status(AcmeAuthorization, "authz_expired") == "expired"
        assert await status(AcmeAuthorization, "authz_valid") == "valid"
        assert await status(AcmeAuthorization, "authz_live") == "pending"
        assert await status(AcmeChallenge, "lost") == "pending", "the client may respond again"
        assert await status(AcmeChallenge, "running") == "processing"
        nonces = set(await session.scalars(select(AcmeNonce.value)))
        assert nonces == {ids["nonce_new"]}
        eab = await session.get(AcmeEabKey, ids["eab"])
        assert eab is not None and eab.account_id == ids["account"]

    again = await collect(runtime)
    assert again == dict.fromkeys(counts, 0), "a second run (or another replica) finds nothing"
