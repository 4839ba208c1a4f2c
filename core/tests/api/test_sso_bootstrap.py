"""The first admin by IdP group, next to the token bootstrap: only one can ever win."""

from __future__ import annotations

import asyncio
import json

import httpx
import msgspec
import pytest
from sqlalchemy import select

from certctl.db.models import AuditEvent, RoleGrant, SystemFlag
from certctl.domain.sso.bootstrap import bootstrap_admin_by_group
from certctl_sdk.testing.idp import InProcessIdp

CLIENT_ID = "certctl"
SECRET = "corp-client-secret-0123456789"
CALLBACK = "https://certctl.test.local/auth/oidc/callback"
TOKEN = "bootstrap-token-0123456789abcdef"
ADMIN_GROUP = "certctl-admins"


@pytest.fixture
def idp():
    with InProcessIdp() as server:
        server.register_client(CLIENT_ID, SECRET, [CALLBACK])
        server.user.groups = [ADMIN_GROUP]
        yield server


@pytest.fixture
async def app(app_factory, idp, tmp_path):
    """No admin anywhere (bootstrap is possible); the provider comes from a file, as it must
    when nobody can call the API yet; ``certctl-admins`` is the admin group."""
    from certctl.settings import parse_named_api_keys

    declared = tmp_path / "provider.json"
    declared.write_text(
        json.dumps(
            {
                "name": "corp",
                "type": "oidc",
                "config": {
                    "issuer": idp.issuer,
                    "client_id": CLIENT_ID,
                    "client_secret": SECRET,
                    "redirect_uri": CALLBACK,
                },
            }
        )
    )
    return await app_factory(
        api_keys_named=parse_named_api_keys("viewer:viewer-test-key-0123456789"),
        bootstrap_token=TOKEN,
        bootstrap_admin_groups=(ADMIN_GROUP,),
        oidc_provider_file=str(declared),
    )


async def provider_of(app) -> str:
    """The declared provider's id, as the login page finds it."""
    (option,) = (await app.get("/api/v1/auth/info")).json()["sso_providers"]
    return str(option["id"])


async def sign_in(app, idp, provider_id, subject="user-alice") -> httpx.Response:
    b = httpx.AsyncClient(transport=app._transport, base_url="https://certctl.test.local")
    idp.user.subject = subject
    login = await b.get("/auth/oidc/login", params={"provider": provider_id})
    done = await b.get(await idp.authorize(login.headers["location"]))
    if done.status_code == 303:
        done.me = (await b.get("/api/v1/auth/me")).json()  # type: ignore[attr-defined]
    await b.aclose()
    return done


async def token_bootstrap(app) -> int:
    response = await app.post("/api/v1/auth/bootstrap", json={"token": TOKEN, "name": "first"})
    return response.status_code


async def test_sso_first_then_the_token_is_gone(app, idp):
    provider_id = await provider_of(app)
    # CERTCTL_BOOTSTRAP_OIDC_PROVIDER_ID naming another provider: this one cannot bootstrap.
    restricted = msgspec.structs.replace(app.runtime.settings, bootstrap_oidc_provider_id="aup-x")
    async with app.runtime.sessions() as db:
        assert not await bootstrap_admin_by_group(
            db,
            restricted,
            user_id="usr-1",
            provider_id=provider_id,
            provider_name="corp",
            groups=(ADMIN_GROUP,),
        )
        assert await db.get(SystemFlag, "bootstrap_consumed") is None

    done = await sign_in(app, idp, provider_id)

    assert done.status_code == 303, done.text
    assert done.me["roles"] == ["r-admin"]
    assert await token_bootstrap(app) == 410
    async with app.runtime.sessions() as db:
        flag = await db.get(SystemFlag, "bootstrap_consumed")
        audit = await db.scalar(
            select(AuditEvent).where(AuditEvent.action == "bootstrap.oidc_first_admin")
        )
    assert flag is not None and flag.value.startswith("usr-")
    assert audit is not None and audit.details["groups"] == [ADMIN_GROUP]
    # A second member of the group is no admin: the bootstrap happened once.
    assert (await sign_in(app, idp, provider_id, subject="user-bob")).status_code == 403


async def test_token_first_then_sso_is_refused(app, idp):
    provider_id = await provider_of(app)
    assert await token_bootstrap(app) == 201

    done = await sign_in(app, idp, provider_id)

    assert done.status_code == 403  # the admin group maps to nothing and bootstrap is over


async def test_racing_sso_logins_and_token_bootstrap_make_one_admin(app, idp):
    provider_id = await provider_of(app)
    browsers = []
    for subject in ("user-a", "user-b", "user-c"):
        b = httpx.AsyncClient(transport=app._transport, base_url="https://certctl.test.local")
        idp.user.subject = subject
        login = await b.get("/auth/oidc/login", params={"provider": provider_id})
        browsers.append((b, await idp.authorize(login.headers["location"])))

    results = await asyncio.gather(
        *(b.get(callback) for b, callback in browsers),
        app.post("/api/v1/auth/bootstrap", json={"token": TOKEN, "name": "first"}),
    )

    statuses = [r.status_code for r in results]
    winners = [s for s in statuses if s in (201, 303)]
    assert len(winners) == 1, statuses
    assert all(s in (403, 410) for s in statuses if s not in (201, 303)), statuses
    async with app.runtime.sessions() as db:
        admins = (await db.scalars(select(RoleGrant).where(RoleGrant.role_id == "r-admin"))).all()
    assert len(admins) == 1, [(a.actor_type, a.actor_id) for a in admins]
    for b, _ in browsers:
        await b.aclose()
