"""Browser sessions over HTTP: cookie authentication, tampering, keys, timeouts, CSRF, revocation.

Sessions are started with ``start_session`` directly (the SSO and break-glass flows that call it
are tested with them); everything else goes through the ASGI client. Time moves by replacing
``runtime.browser_sessions.clock``, never by sleeping (except the sub-second wait for another
replica's auth cache).
"""

import asyncio
import base64
import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa
from litestar import Request

from certctl.db.base import utcnow
from certctl.db.models import BrowserSession, SessionSigningKey
from certctl.domain.auth.seeding import grant_once
from certctl.domain.sessions.cookies import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    encode_cookie,
    new_secret,
)
from certctl.domain.sessions.gc import ENDED_SESSION_GRACE, collect_sessions
from certctl.domain.sessions.service import (
    record_session_started,
    revoke_sessions,
    start_session,
)
from certctl.domain.users.service import upsert_federated_user
from certctl.errors import Forbidden

PROVIDER = "op-test"
UA = "certctl-tests/1.0"


def sign_in_request(ip: str = "127.0.0.1", ua: str = UA) -> Request:
    """What the SSO callback's request looks like to ``start_session``."""
    return Request(
        scope={
            "type": "http",
            "method": "GET",
            "path": "/auth/oidc/callback",
            "headers": [(b"user-agent", ua.encode())],
            "client": (ip, 40000),
            "query_string": b"",
        }
    )


async def make_user(client, subject="alice", *, groups=("admins",), role=None):
    """A federated user; ``op-test:admins`` holds r-admin, ``role`` is granted to the user."""
    async with client.runtime.sessions() as db:
        user = await upsert_federated_user(
            db,
            provider_id=PROVIDER,
            subject=subject,
            email=f"{subject}@example.test",
            display_name=subject.title(),
            groups=groups,
        )
        await grant_once(db, "Group", f"{PROVIDER}:admins", "r-admin", "test")
        if role:
            await grant_once(db, "User", user.id, role, "test")
        await db.commit()
    return user


async def login(client, user, *, groups=("admins",), request=None):
    async with client.runtime.sessions() as db:
        issued = await start_session(
            client.runtime,
            db,
            user=user,
            request=request or sign_in_request(),
            groups=groups,
            auth_method="sso",
            idp_sid="idp-sid-1",
        )
        record_session_started(db, user, issued)
        await db.commit()
    return issued


def browser(issued=None, *, cookie=None, csrf=None, header=None):
    """Request headers of a browser holding the cookies (and echoing the CSRF token)."""
    jar = {}
    if issued is not None or cookie is not None:
        jar[SESSION_COOKIE] = cookie if cookie is not None else issued.cookie_value
    if issued is not None or csrf is not None:
        jar[CSRF_COOKIE] = csrf if csrf is not None else issued.csrf_token
    headers = {"User-Agent": UA}
    if jar:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
    if header is not None:
        headers["X-CSRF-Token"] = header
    return headers


def with_csrf(issued):
    return browser(issued, header=issued.csrf_token)


def assert_rejected(r, detail_part=""):
    """401 problem document that also deletes both cookies."""
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert detail_part in r.json()["detail"]
    cleared = {c.split("=", 1)[0]: c.lower() for c in r.headers.get_list("set-cookie")}
    assert set(cleared) == {SESSION_COOKIE, CSRF_COOKIE}, cleared
    for value in cleared.values():
        assert "max-age=0" in value
        assert "secure" in value
        assert "path=/" in value


class Clock:
    """A settable clock shared by every app of a test."""

    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, **kwargs):
        self.now += timedelta(**kwargs)


def clocked(*clients):
    clock = Clock()
    for c in clients:
        c.runtime.browser_sessions.clock = clock
    return clock


async def check(client, headers):
    return await client.get("/api/v1/auth/check", headers=headers)


# --- cookies (format and attributes: core/tests/unit/test_session_cookies.py) ------


async def test_a_session_cookie_authenticates_as_the_user_with_group_grants(app_factory):
    client = await app_factory()
    user = await make_user(client)
    issued = await login(client, user)
    r = await check(client, browser(issued))
    assert r.status_code == 200, r.text
    me = r.json()
    assert (me["name"], me["type"], me["session_id"]) == (user.id, "User", issued.session_id)
    assert me["display_name"] == "Alice"
    assert "r-admin" in me["roles"]  # held by the group op-test:admins
    # Without the group the same user holds nothing, but is still authenticated.
    bare = await login(client, user, groups=())
    r = await check(client, browser(bare))
    assert r.status_code == 200
    assert r.json()["roles"] == []
    r = await client.get("/api/v1/certificates", headers=browser(bare))
    assert r.status_code == 403
    # The database holds verifiers only: no token, CSRF token or signing key in clear.
    token = issued.cookie_value.split(".")[1]
    async with client.runtime.engine.connect() as conn:
        dump = repr((await conn.execute(sa.text("SELECT * FROM sessions"))).all())
        dump += repr((await conn.execute(sa.text("SELECT * FROM session_signing_keys"))).all())
    assert token not in dump
    assert issued.csrf_token not in dump
    assert hashlib.sha256(token.encode()).hexdigest() in dump
    _, key = await client.runtime.browser_sessions.keys.signing_key()
    assert base64.urlsafe_b64encode(key).decode().rstrip("=") not in dump
    assert key.hex() not in dump
    assert issued.cookie_value not in repr(issued)
    assert issued.csrf_token not in repr(issued)


def _shift(value: str, field_from: int, field_to: int) -> str:
    """Move the last character of one dotted field to the front of the next one."""
    parts = value.split(".")
    moved = parts[field_from][-1]
    parts[field_from] = parts[field_from][:-1]
    parts[field_to] = moved + parts[field_to]
    return ".".join(parts)


def _flip(value: str, field: int) -> str:
    parts = value.split(".")
    s = parts[field]
    parts[field] = s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1]
    return ".".join(parts)


async def test_tampered_cookies_are_refused_and_cleared(app_factory):
    client = await app_factory()
    issued = await login(client, await make_user(client))
    good = issued.cookie_value
    v, token, key_id, mac = good.split(".")
    raw_mac = base64.urlsafe_b64decode(mac + "=")
    non_canonical = mac[:-1] + chr(ord(mac[-1]) + 1)  # same bytes, other spelling
    assert base64.urlsafe_b64decode(non_canonical + "=") == raw_mac
    variants = {
        "token": _flip(good, 1),
        "key id": f"{v}.{token}.sk-{'0' * 16}.{mac}",
        "mac": _flip(good, 3),
        "token→key id": _shift(good, 1, 2),
        "key id→mac": _shift(good, 2, 3),
        "version": "v2" + good[2:],
        "no version": good[3:],
        "extra field": good + ".x",
        "truncated": good[:-1],
        "non-canonical mac": f"{v}.{token}.{key_id}.{non_canonical}",
        "garbage": "not-a-cookie",
        "oversized": good + "A" * 500,
    }
    for name, value in variants.items():
        assert value != good, name
        r = await check(client, browser(cookie=value))
        assert_rejected(r)
    r = await check(client, browser(issued))
    assert r.status_code == 200  # the real one still works


async def test_a_cookie_signed_with_another_key_is_refused(app_factory):
    client = await app_factory()
    issued = await login(client, await make_user(client))
    token, key_id = issued.cookie_value.split(".")[1:3]
    forged = encode_cookie(token, key_id, b"x" * 32)
    assert_rejected(await check(client, browser(cookie=forged)), "signature")
    # A well-formed key id nobody created.
    forged = encode_cookie(token, "sk-00000000deadbeef", b"x" * 32)
    assert_rejected(await check(client, browser(cookie=forged)), "signing key")
    # An unknown token correctly signed with the real key (a session that never existed).
    _, key = await client.runtime.browser_sessions.keys.signing_key()
    forged = encode_cookie(new_secret(), key_id, key)
    assert_rejected(await check(client, browser(cookie=forged)), "ended")


async def test_a_retired_key_verifies_within_its_retention_and_not_after(app_factory):
    client = await app_factory()
    user = await make_user(client)
    old = await login(client, user)
    ring = client.runtime.browser_sessions.keys
    assert await ring.rotate() is False  # not due yet
    assert await ring.rotate(force=True) is True
    new = await login(client, user)
    old_key, new_key = old.cookie_value.split(".")[2], new.cookie_value.split(".")[2]
    assert old_key != new_key
    for issued in (old, new):
        assert (await check(client, browser(issued))).status_code == 200
    async with client.runtime.sessions() as db:
        active = (
            await db.scalars(
                sa.select(SessionSigningKey.id).where(SessionSigningKey.active_slot == 1)
            )
        ).all()
    assert active == [new_key]
    # The retention has passed (the rotation happened long ago): the old key stops verifying.
    retention = client.runtime.settings.session_signing_key_retention
    async with client.runtime.engine.begin() as conn:
        await conn.execute(
            sa.update(SessionSigningKey)
            .where(SessionSigningKey.id == old_key)
            .values(retired_at=utcnow() - timedelta(seconds=retention + 1))
        )
        await conn.execute(sa.text("UPDATE auth_generation SET value = value + 1"))
    client.runtime.auth_generation.invalidate()
    assert_rejected(await check(client, browser(old)), "signing key")
    assert (await check(client, browser(new))).status_code == 200
    assert await ring.prune() == 1
    async with client.runtime.sessions() as db:
        assert await db.get(SessionSigningKey, old_key) is None


async def test_another_replica_verifies_right_after_a_rotation(app_factory):
    a = await app_factory()
    b = await app_factory(auth_cache_ms=60_000)  # b will not notice the generation soon
    user = await make_user(a)
    assert (await check(b, browser(await login(a, user)))).status_code == 200
    await a.runtime.browser_sessions.keys.rotate(force=True)
    fresh = await login(a, user)
    # b does not know the new key id yet, and reloads the keys for it.
    assert (await check(b, browser(fresh))).status_code == 200


async def test_two_replicas_creating_the_first_key_end_with_one(app_factory):
    a = await app_factory()
    b = await app_factory()
    ids = await asyncio.gather(
        a.runtime.browser_sessions.keys.signing_key(),
        b.runtime.browser_sessions.keys.signing_key(),
    )
    assert ids[0][0] == ids[1][0]
    async with a.runtime.sessions() as db:
        assert await db.scalar(sa.select(sa.func.count()).select_from(SessionSigningKey)) == 1
    # Rotating at once: each rotation that reports success retired one key, one stays active.
    rotated = await asyncio.gather(
        a.runtime.browser_sessions.keys.rotate(force=True),
        b.runtime.browser_sessions.keys.rotate(force=True),
    )
    assert any(rotated)
    async with a.runtime.sessions() as db:
        keys = (await db.execute(sa.select(SessionSigningKey))).scalars().all()
    assert len(keys) == 1 + sum(rotated)
    assert [k.active_slot for k in keys].count(1) == 1


async def test_the_first_key_is_created_inside_the_sign_in_transaction(app_factory):
    """The caller already wrote (the user row): on SQLite nobody else could write meanwhile."""
    client = await app_factory()
    async with client.runtime.sessions() as db:
        user = await upsert_federated_user(
            db, provider_id=PROVIDER, subject="x", email=None, display_name="X", groups=()
        )
        await start_session(
            client.runtime, db, user=user, request=sign_in_request(), groups=(), auth_method="sso"
        )
        await db.rollback()  # the sign-in failed later: its key goes with it
    async with client.runtime.sessions() as db:
        assert await db.scalar(sa.select(sa.func.count()).select_from(SessionSigningKey)) == 0
    issued = await login(client, await make_user(client))
    assert (await check(client, browser(issued))).status_code == 200
    again = await login(client, await make_user(client, "bob"))
    assert again.cookie_value.split(".")[2] == issued.cookie_value.split(".")[2]
    assert (await check(client, browser(again))).status_code == 200


# --- timeouts ----------------------------------------------------------------------------


async def _last_seen(client, session_id):
    async with client.runtime.sessions() as db:
        return await db.scalar(
            sa.select(BrowserSession.last_seen_at).where(BrowserSession.id == session_id)
        )


async def test_idle_and_absolute_timeouts(app_factory):
    client = await app_factory()
    clock = clocked(client)
    user = await make_user(client)
    steady, idle = await login(client, user), await login(client, user)
    # last_seen_at is written at most once a minute, not per request.
    start = await _last_seen(client, steady.session_id)
    for _ in range(5):
        clock.advance(seconds=10)
        assert (await check(client, browser(steady))).status_code == 200
    assert await _last_seen(client, steady.session_id) == start
    clock.advance(seconds=11)
    assert (await check(client, browser(steady))).status_code == 200
    assert await _last_seen(client, steady.session_id) == clock.now
    # Requests every 50 minutes keep a session alive; 61 idle minutes end it.
    for _ in range(9):  # until 7 h 31 min after sign-in
        clock.advance(minutes=50)
        assert (await check(client, browser(steady))).status_code == 200
    assert_rejected(await check(client, browser(idle)), "inactivity")
    clock.advance(minutes=30)  # 8 h 01 min after sign-in: however active, it is over
    assert_rejected(await check(client, browser(steady)), "expired")


async def test_idle_time_counts_requests_served_by_another_replica(app_factory):
    a = await app_factory()
    b = await app_factory()
    clock = clocked(a, b)
    issued = await login(a, await make_user(a))
    assert (await check(b, browser(issued))).status_code == 200  # cached on b
    for _ in range(3):  # the user works on a for 2.5 hours
        clock.advance(minutes=50)
        assert (await check(a, browser(issued))).status_code == 200
    clock.advance(minutes=10)
    # b's cached view is 2 h 40 min old, but the row says 10 minutes.
    assert (await check(b, browser(issued))).status_code == 200


# --- CSRF --------------------------------------------------------------------------------


async def test_csrf_is_required_for_session_writes(app_factory):
    client = await app_factory()
    issued = await login(client, await make_user(client))
    url = "/api/v1/auth/sessions"
    r = await client.delete(url, headers=browser(issued))
    assert r.status_code == 403
    assert "X-CSRF-Token" in r.json()["detail"]
    r = await client.delete(url, headers=browser(issued, header="wrong"))
    assert r.status_code == 403
    assert "does not match" in r.json()["detail"]
    other = new_secret()  # cookie and header agree, but not with the session
    r = await client.delete(url, headers=browser(issued, csrf=other, header=other))
    assert r.status_code == 403
    assert "not this session's" in r.json()["detail"]
    r = await client.delete(url, headers=with_csrf(issued))
    assert r.status_code == 200, r.text
    assert (await check(client, browser(issued))).status_code == 200  # GET needs none


async def test_api_key_callers_are_exempt_and_their_key_wins_over_cookies(
    app_factory, admin_headers, viewer_headers
):
    client = await app_factory()
    issued = await login(client, await make_user(client))
    headers = {**browser(issued), **admin_headers}
    r = await client.delete("/api/v1/auth/sessions", headers=headers)
    assert r.status_code == 200
    r = await check(client, {**browser(issued), **viewer_headers})
    assert (r.json()["name"], r.json()["type"]) == ("viewer", "APIKey")
    # A broken cookie next to a key is ignored, not refused.
    r = await check(client, {**browser(cookie="v1.broken"), **viewer_headers})
    assert r.status_code == 200
    assert "set-cookie" not in r.headers


# --- revocation and logout -----------------------------------------------------------------


async def test_revocation_reaches_another_replica_within_the_auth_cache_bound(app_factory):
    a = await app_factory(auth_cache_ms=100)
    b = await app_factory(auth_cache_ms=100)
    user = await make_user(a)
    issued, other = await login(a, user), await login(a, user)
    assert (await check(b, browser(issued))).status_code == 200  # now cached on b
    r = await a.delete(f"/api/v1/auth/sessions/{issued.session_id}", headers=with_csrf(other))
    assert r.status_code == 204, r.text
    assert_rejected(await check(a, browser(issued)))  # at once where it happened
    await asyncio.sleep(0.15)  # longer than auth_cache_ms
    assert_rejected(await check(b, browser(issued)))
    assert (await check(b, browser(other))).status_code == 200


async def test_revoke_sessions_filters(app_factory):
    client = await app_factory()
    alice, bob = await make_user(client), await make_user(client, "bob")
    a1, a2, b1 = await login(client, alice), await login(client, alice), await login(client, bob)
    async with client.runtime.sessions() as db:
        with pytest.raises(ValueError, match="at least one filter"):
            await revoke_sessions(db, reason="oops")
        n = await revoke_sessions(
            db, provider_id=PROVIDER, idp_sub="alice", except_session_id=a2.session_id, reason="t"
        )
        assert n == 1
        await db.commit()
    client.runtime.auth_generation.invalidate()
    assert_rejected(await check(client, browser(a1)))
    assert (await check(client, browser(a2))).status_code == 200
    async with client.runtime.sessions() as db:
        assert await revoke_sessions(db, idp_sid="idp-sid-1", reason="bcl") == 2
        await db.commit()
    client.runtime.auth_generation.invalidate()
    for issued in (a2, b1):
        assert_rejected(await check(client, browser(issued)))


async def test_logout(app_factory, admin_headers):
    client = await app_factory()
    issued = await login(client, await make_user(client))
    r = await client.post("/auth/logout", headers=browser(issued))
    assert r.status_code == 403  # a cross-site form cannot sign the user out
    assert (await check(client, browser(issued))).status_code == 200
    r = await client.post("/auth/logout", headers=with_csrf(issued))
    assert r.status_code == 204
    cleared = {c.split("=", 1)[0]: c.lower() for c in r.headers.get_list("set-cookie")}
    assert set(cleared) == {SESSION_COOKIE, CSRF_COOKIE}
    assert all("max-age=0" in c for c in cleared.values())
    assert_rejected(await check(client, browser(issued)), "ended")
    # Logging out again, with a dead cookie or none, still answers 204 and clears.
    for headers in (with_csrf(issued), browser(cookie="junk"), {}):
        r = await client.post("/auth/logout", headers=headers)
        assert r.status_code == 204
        assert len(r.headers.get_list("set-cookie")) == 2
    r = await client.get(
        "/api/v1/audit", params={"category": "auth", "per_page": 500}, headers=admin_headers
    )
    events = {(e["action"], e["resource_id"]): e for e in r.json()["data"]}
    assert (events[("auth.session.logout", issued.session_id)]["actor"]) == issued.user_id
    started = events[("auth.session.start", issued.session_id)]
    assert started["details"] == {
        "user_id": issued.user_id,
        "provider_id": PROVIDER,
        "auth_method": "sso",
    }
    assert issued.cookie_value.split(".")[1] not in r.text


async def test_deactivating_a_user_ends_their_sessions(app_factory, admin_headers):
    client = await app_factory()
    user = await make_user(client)
    issued = await login(client, user)
    r = await client.delete(f"/api/v1/auth/users/{user.id}", headers=admin_headers)
    assert r.status_code == 204, r.text
    assert_rejected(await check(client, browser(issued)), "ended")
    with pytest.raises(Forbidden, match="deactivated"):
        await login(client, user)
    async with client.runtime.sessions() as db:
        refreshed = await upsert_federated_user(
            db,
            provider_id=PROVIDER,
            subject="alice",
            email=None,
            display_name="Alice",
            groups=("admins",),
        )
        assert refreshed.deactivated_at is not None  # signing in again does not reactivate
    r = await client.post(f"/api/v1/auth/users/{user.id}/reactivate", headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["deactivated_at"] is None
    assert_rejected(await check(client, browser(issued)))  # old sessions stay ended
    fresh = await login(client, user)
    assert (await check(client, browser(fresh))).status_code == 200
    # The cookie check joins the user row: a session not revoked (started while the
    # deactivation committed) is refused too.
    async with client.runtime.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE users SET deactivated_at = CURRENT_TIMESTAMP WHERE id = :id"),
            {"id": user.id},
        )
        await conn.execute(sa.text("UPDATE auth_generation SET value = value + 1"))
    client.runtime.auth_generation.invalidate()
    assert_rejected(await check(client, browser(fresh)))


# --- binding -------------------------------------------------------------------------------


async def test_ip_and_user_agent_binding(app_factory):
    client = await app_factory(session_bind_ip=True, session_bind_user_agent=True)
    user = await make_user(client)
    elsewhere = await login(client, user, request=sign_in_request(ip="10.1.2.3"))
    assert_rejected(await check(client, browser(elsewhere)), "address")
    other_browser = await login(client, user, request=sign_in_request(ua="OtherBrowser/2"))
    assert_rejected(await check(client, browser(other_browser)), "browser")
    here = await login(client, user)  # the ASGI client is 127.0.0.1 with the same UA
    assert (await check(client, browser(here))).status_code == 200
    unbound = await app_factory()
    assert (await check(unbound, browser(elsewhere))).status_code == 200


# --- list / revoke endpoints ---------------------------------------------------------------


async def _self_service_role(client):
    """A role with the session permissions but not auth.session.list.all."""
    async with client.runtime.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO roles (id, name, description, builtin, created_at, updated_at) "
                "VALUES ('r-self', 'self', '', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        for perm in ("auth.session.list", "auth.session.revoke"):
            await conn.execute(
                sa.text("INSERT INTO role_permissions (role_id, permission) VALUES ('r-self', :p)"),
                {"p": perm},
            )
    return "r-self"


async def test_list_and_revoke_endpoints(app_factory, admin_headers, viewer_headers):
    client = await app_factory()
    role = await _self_service_role(client)
    alice = await make_user(client)
    bob = await make_user(client, "bob", groups=(), role=role)
    a1 = await login(client, alice)
    b1 = await login(client, bob, groups=())
    b2 = await login(client, bob, groups=())
    b3 = await login(client, bob, groups=())

    r = await client.get("/api/v1/auth/sessions", headers=browser(b1))
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == 3
    assert {s["id"] for s in page["data"]} == {b1.session_id, b2.session_id, b3.session_id}
    assert [s["current"] for s in page["data"] if s["id"] == b1.session_id] == [True]
    assert {s["user_id"] for s in page["data"]} == {bob.id}
    text = r.text
    for issued in (b1, b2, b3):
        token = issued.cookie_value.split(".")[1]
        for secret in (token, issued.csrf_token, hashlib.sha256(token.encode()).hexdigest()):
            assert secret not in text
        assert hashlib.sha256(issued.csrf_token.encode()).hexdigest() not in text
    assert not {"token_hash", "csrf_hash"} & set(page["data"][0])

    for params in ({"actor_id": alice.id}, {"all": "true"}):
        r = await client.get("/api/v1/auth/sessions", params=params, headers=browser(b1))
        assert r.status_code == 403
        assert "auth.session.list.all" in r.json()["detail"]
    r = await client.delete(f"/api/v1/auth/sessions/{a1.session_id}", headers=with_csrf(b1))
    assert r.status_code == 404  # not bob's, and bob may not see others'
    r = await client.delete(f"/api/v1/auth/sessions/{b2.session_id}", headers=with_csrf(b1))
    assert r.status_code == 204
    assert "set-cookie" not in r.headers  # not the current session
    assert_rejected(await check(client, browser(b2)))
    r = await client.delete("/api/v1/auth/sessions", headers=with_csrf(b1))
    assert r.json() == {"revoked": 1}
    assert_rejected(await check(client, browser(b3)))
    assert (await check(client, browser(b1))).status_code == 200

    # alice is an admin (auth.session.list.all): everyone's sessions.
    r = await client.get("/api/v1/auth/sessions", params={"all": "true"}, headers=browser(a1))
    assert {s["id"] for s in r.json()["data"]} == {a1.session_id, b1.session_id}
    r = await client.get("/api/v1/auth/sessions", params={"actor_id": bob.id}, headers=browser(a1))
    assert [s["id"] for s in r.json()["data"]] == [b1.session_id]
    r = await client.delete(f"/api/v1/auth/sessions/{b1.session_id}", headers=with_csrf(a1))
    assert r.status_code == 204
    assert_rejected(await check(client, browser(b1)))
    # Revoking your own current session also clears your cookies.
    r = await client.delete(f"/api/v1/auth/sessions/{a1.session_id}", headers=with_csrf(a1))
    assert r.status_code == 204
    assert len(r.headers.get_list("set-cookie")) == 2

    for method, url in (
        ("GET", "/api/v1/auth/sessions"),
        ("DELETE", "/api/v1/auth/sessions"),
        ("DELETE", f"/api/v1/auth/sessions/{b1.session_id}"),
    ):
        r = await client.request(method, url, headers=viewer_headers)
        assert r.status_code == 403, (method, url)

    r = await client.get(
        "/api/v1/audit",
        params={"action": "auth.session.revoke", "per_page": 500},
        headers=admin_headers,
    )
    revoked = {e["resource_id"] for e in r.json()["data"]}
    assert {b2.session_id, b1.session_id, a1.session_id, bob.id} <= revoked


# --- GC ------------------------------------------------------------------------------------


async def test_gc_deletes_ended_sessions_and_rotates_keys(app_factory):
    client = await app_factory()
    user = await make_user(client)
    live, expired, revoked, idle, fresh_revoked = [await login(client, user) for _ in range(5)]
    now = utcnow()
    long_ago = now - ENDED_SESSION_GRACE - timedelta(minutes=1)
    async with client.runtime.engine.begin() as conn:
        table = BrowserSession.__table__
        await conn.execute(
            table.update().where(table.c.id == expired.session_id).values(expires_at=long_ago)
        )
        await conn.execute(
            table.update().where(table.c.id == revoked.session_id).values(revoked_at=long_ago)
        )
        await conn.execute(
            table.update()
            .where(table.c.id == fresh_revoked.session_id)
            .values(revoked_at=now - timedelta(minutes=5))
        )
        await conn.execute(
            table.update()
            .where(table.c.id == idle.session_id)
            .values(last_seen_at=long_ago - timedelta(hours=1))
        )
        # The active key is older than the rotation period.
        await conn.execute(sa.update(SessionSigningKey).values(created_at=now - timedelta(days=8)))
    swept = []

    async def sweep(runtime):
        swept.append(runtime)
        return 2

    async def broken(runtime):
        raise RuntimeError("a broken sweep")

    client.runtime.browser_sessions.add_sweep("broken", broken)
    client.runtime.browser_sessions.add_sweep("pre-login", sweep)
    removed = await collect_sessions(client.runtime)
    assert removed == 3 + 2
    assert swept == [client.runtime]
    async with client.runtime.sessions() as db:
        left = set(await db.scalars(sa.select(BrowserSession.id)))
        keys = (await db.execute(sa.select(SessionSigningKey))).scalars().all()
    assert left == {live.session_id, fresh_revoked.session_id}
    assert len(keys) == 2
    assert sum(k.active_slot == 1 for k in keys) == 1
    assert (await check(client, browser(live))).status_code == 200  # old key still verifies
