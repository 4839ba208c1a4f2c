"""Break-glass sign-in: off means invisible; Argon2id; atomic lockout; equal time and answers.

Argon2 runs at a low cost here (1 MiB, one pass) except in the parameter test, which checks the
production cost, and in the timing test, which needs a verification long enough to measure.
"""

import asyncio
import json
import logging
import statistics
import time
from datetime import timedelta

import httpx
import sqlalchemy as sa

from certctl.db.base import utcnow
from certctl.domain.breakglass.hashing import Argon2

LOGIN = "/auth/breakglass/login"
CREDS = "/api/v1/auth/breakglass/credentials"
PASSWORD = "correct-horse-battery-staple-42"
FAST = {
    "breakglass_enabled": True,
    "breakglass_argon2_memory_kib": 1024,
    "breakglass_argon2_time_cost": 1,
    "breakglass_argon2_parallelism": 1,
}


def _browser(client, address="198.51.100.7"):
    """A cookie-keeping client of the same app, as a browser from ``address``."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=client.app, client=(address, 50000)),
        base_url="https://certctl.test.local",
    )


async def _app(app_factory, **overrides):
    return await app_factory(**{**FAST, "breakglass_login_per_ip_min": 1000, **overrides})


async def _create(client, headers, username="rescue", password=PASSWORD, **extra):
    r = await client.post(
        CREDS, json={"username": username, "password": password, **extra}, headers=headers
    )
    assert r.status_code in (200, 201), r.text
    return r.json()


async def _login(browser, username="rescue", password=PASSWORD):
    return await browser.post(LOGIN, json={"username": username, "password": password})


async def _audit(client, action="auth.breakglass.login"):
    async with client.runtime.sessions() as db:
        rows = await db.execute(
            sa.text(
                "SELECT outcome, actor, resource_id, details FROM audit_events "
                "WHERE action = :a ORDER BY timestamp, id"
            ),
            {"a": action},
        )
        return [(o, a, r, d if isinstance(d, dict) else json.loads(d)) for o, a, r, d in rows.all()]


async def _credential_row(client, username="rescue"):
    async with client.runtime.sessions() as db:
        return (
            await db.execute(
                sa.text(
                    "SELECT actor_id, password_hash, failed_attempts, locked_until "
                    "FROM breakglass_credentials WHERE username = :u"
                ),
                {"u": username},
            )
        ).one()


async def test_disabled_every_route_is_an_unknown_route(client, admin_headers):
    unknown = await client.post("/auth/no-such-route", json={})
    assert unknown.status_code == 404
    for method, url in [
        ("POST", LOGIN),
        ("GET", LOGIN),
        ("GET", CREDS),
        ("POST", CREDS),
        ("POST", f"{CREDS}/usr-x/unlock"),
        ("DELETE", f"{CREDS}/usr-x"),
    ]:
        for headers in ({}, admin_headers):
            r = await client.request(
                method, url, json={} if method != "GET" else None, headers=headers
            )
            assert r.status_code == 404, (method, url, r.text)
            assert r.json()["detail"] == unknown.json()["detail"]
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    assert not [p for p in paths if "breakglass" in p]
    info = (await client.get("/api/v1/auth/info")).json()
    assert "breakglass" not in info["methods"]


class _Records(logging.Handler):
    """Collects records of one logger (Litestar replaces the root handlers pytest's caplog
    uses when an app starts, so caplog sees nothing logged after that)."""

    def __init__(self, name):
        super().__init__(logging.DEBUG)
        self.records = []
        self.logger = logging.getLogger(name)

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)


async def test_production_argon2_parameters():
    argon2 = Argon2(memory_kib=65536, time_cost=3, parallelism=4, concurrency=1)
    phc = await argon2.hash(PASSWORD)
    assert phc.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    salt, digest = phc.split("$")[4:]
    assert len(salt) == 22 and len(digest) == 43  # 16 and 32 bytes, unpadded base64
    assert await argon2.verify_or_dummy(phc, PASSWORD)
    assert not await argon2.verify_or_dummy(phc, PASSWORD + "x")
    assert not await argon2.verify_or_dummy(None, PASSWORD)  # the dummy never matches


async def test_create_sign_in_and_hash_upgrade(app_factory, admin_headers):
    with _Records("certctl") as logged:
        client = await _app(app_factory)
        assert any(
            r.levelno == logging.WARNING and "break-glass sign-in is ENABLED" in r.getMessage()
            for r in logged.records
        )
        assert "breakglass" in (await client.get("/api/v1/auth/info")).json()["methods"]
        created = await _create(client, admin_headers)
        assert created["username"] == "rescue" and created["role_id"] == "r-admin"
        assert created["actor_id"].startswith("usr-")
        assert PASSWORD not in json.dumps(created) and "password_hash" not in created
        actor_id, phc, attempts, locked = await _credential_row(client)
        assert (attempts, locked) == (0, None)
        assert phc.startswith("$argon2id$v=19$m=1024,t=1,p=1$") and PASSWORD not in phc
        async with _browser(client) as browser:
            r = await _login(browser)
            assert r.status_code == 200, r.text
            assert r.json()["user_id"] == actor_id and r.json()["username"] == "rescue"
            assert {"__Host-certctl_session", "__Host-certctl_csrf"} <= set(browser.cookies)
            me = (await browser.get("/api/v1/auth/check")).json()
            assert me["name"] == actor_id and me["type"] == "User"
            assert "r-admin" in me["roles"] and "auth.breakglass.admin" in me["permissions"]
            assert me["session_id"] == r.json()["session_id"]
    listed = (await client.get(CREDS, headers=admin_headers)).json()
    assert listed["total"] == 1 and listed["data"][0]["last_login_at"] is not None
    ((outcome, actor, resource, details),) = await _audit(client)
    assert (outcome, actor, resource) == ("success", actor_id, actor_id)
    assert details["session_id"] == r.json()["session_id"]
    created_rows = await _audit(client, "auth.breakglass.credential.create")
    assert created_rows[0][1] == "admin"
    # The password is in no audit row and no log line.
    async with client.runtime.sessions() as db:
        everything = (await db.execute(sa.text("SELECT details FROM audit_events"))).all()
    assert PASSWORD not in json.dumps([str(row[0]) for row in everything])
    assert any("break-glass sign-in of rescue" in r.getMessage() for r in logged.records)
    assert not [r for r in logged.records if PASSWORD in r.getMessage()]

    # A hash made with other parameters than the current ones is replaced at sign-in.
    client.runtime.breakglass.argon2 = Argon2(
        memory_kib=2048, time_cost=2, parallelism=1, concurrency=1
    )
    async with _browser(client) as browser:
        assert (await _login(browser)).status_code == 200
    assert (await _credential_row(client))[1].startswith("$argon2id$v=19$m=2048,t=2,p=1$")
    async with _browser(client) as browser:
        assert (await _login(browser)).status_code == 200


async def test_failures_look_alike_lockout_and_its_expiry(app_factory, admin_headers):
    client = await _app(
        app_factory,
        breakglass_lockout_threshold=2,
        breakglass_lockout_duration_seconds=30,
        breakglass_lockout_reset_seconds=3600,
    )
    await _create(client, admin_headers)
    await _create(client, admin_headers, username="locked-one")
    async with _browser(client) as browser:
        for _ in range(2):
            assert (await _login(browser, "locked-one", "wrong-" + PASSWORD)).status_code == 401
        answers = [
            await _login(browser, "rescue", "wrong-" + PASSWORD),
            await _login(browser, "nobody-here", PASSWORD),
            await _login(browser, "locked-one", PASSWORD),  # right password, locked account
        ]
    assert {r.status_code for r in answers} == {401}
    assert len({r.text for r in answers}) == 1
    assert len({tuple(sorted(r.headers.keys())) for r in answers}) == 1
    rows = await _audit(client)
    outcomes = [(o, d["reason"]) for o, _, _, d in rows]
    assert outcomes == [
        ("denied", "wrong_password"),
        ("denied", "wrong_password"),
        ("denied", "wrong_password"),
        ("denied", "unknown_user"),
        ("locked", "locked"),
    ]
    assert rows[1][3]["locked"] is True and rows[1][3]["failed_attempts"] == 2
    assert all(actor == "198.51.100.7" for _, actor, _, _ in rows)
    unknown = rows[3][3]
    assert "nobody-here" not in json.dumps(unknown) and len(unknown["username_sha256"]) == 64

    # The lock passes after its duration; failures older than the reset interval stop counting.
    service = client.runtime.breakglass
    service.threshold = 3
    now = [utcnow()]
    service.clock = lambda: now[0]
    await _create(client, admin_headers, username="timed")
    async with _browser(client) as browser:
        for _ in range(3):
            assert (await _login(browser, "timed", "wrong-" + PASSWORD)).status_code == 401
        assert (await _login(browser, "timed")).status_code == 401  # locked: the right one too
        listed = {
            c["username"]: c
            for c in (await client.get(CREDS, headers=admin_headers)).json()["data"]
        }
        assert listed["timed"]["locked"] is True and listed["timed"]["failed_attempts"] == 3
        now[0] += timedelta(seconds=31)
        assert (await _login(browser, "timed")).status_code == 200  # the lock has passed
        assert (await _credential_row(client, "timed"))[2] == 0  # success resets the count
        # Two failures, then an hour later they no longer count: two more do not lock.
        for _ in range(2):
            assert (await _login(browser, "timed", "wrong-" + PASSWORD)).status_code == 401
        now[0] += timedelta(seconds=3601)
        for _ in range(2):
            assert (await _login(browser, "timed", "wrong-" + PASSWORD)).status_code == 401
        assert (await _credential_row(client, "timed"))[2] == 2
        assert (await _login(browser, "timed")).status_code == 200


async def test_concurrent_guesses_are_all_counted_and_cannot_outrun_the_lock(
    app_factory, admin_headers
):
    """Every simultaneous guess is counted; at most the threshold of them reach the hash."""
    client = await _app(app_factory, breakglass_lockout_threshold=1000)
    await _create(client, admin_headers)
    async with _browser(client) as browser:
        answers = await asyncio.gather(
            *(_login(browser, password=f"wrong-{i}-{PASSWORD}") for i in range(16))
        )
        assert [r.status_code for r in answers] == [401] * 16
        assert (await _credential_row(client))[2] == 16

        client.runtime.breakglass.threshold = 3
        await _create(client, admin_headers, username="second")
        answers = await asyncio.gather(
            *(_login(browser, "second", f"wrong-{i}-{PASSWORD}") for i in range(12))
        )
    assert {r.status_code for r in answers} == {401}
    assert (await _credential_row(client, "second"))[2] == 3
    outcomes = [o for o, _, resource, _ in await _audit(client)]
    assert outcomes.count("denied") == 16 + 3 and outcomes.count("locked") == 9


async def test_sign_in_is_limited_per_address(app_factory, admin_headers):
    # The default: 5 attempts per address per minute.
    client = await app_factory(**FAST, breakglass_lockout_threshold=100)
    await _create(client, admin_headers)
    async with _browser(client, "192.0.2.33") as browser, _browser(client, "192.0.2.34") as other:
        codes = [
            (await _login(browser, password="wrong-" + PASSWORD)).status_code for _ in range(6)
        ]
        assert codes == [401] * 5 + [429]
        r = await _login(browser)
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 12
        assert "break-glass sign-in limit" in r.json()["detail"]
        assert (await _login(other)).status_code == 200
    assert len(await _audit(client)) == 6  # the refused attempts never reached a password


async def test_policy_bad_input_and_no_escalation(app_factory, admin_headers, viewer_headers):
    client = await _app(app_factory)
    for body, reason in [
        ({"username": "rescue", "password": "short-password"}, "at least 16 characters"),
        ({"username": "rescue", "password": "abababababababababab"}, "6 different characters"),
        (
            {"username": "rescue", "password": "my-rescue-password-99"},
            "must not contain the username",
        ),
        ({"username": "rescue", "password": " " + PASSWORD}, "whitespace"),
        ({"username": "x", "password": PASSWORD}, "username must be"),
        ({"username": "Bad Name!", "password": PASSWORD}, "username must be"),
        ({"username": "rescue", "password": "p" * 2000}, "at most 1024"),
        ({"username": "rescue"}, ""),
        ({"username": "rescue", "password": PASSWORD, "admin": True}, ""),
    ]:
        r = await client.post(CREDS, json=body, headers=admin_headers)
        assert r.status_code == 400, (body, r.text)
        assert reason in r.json()["detail"] + json.dumps(r.json().get("errors", ""))
        assert PASSWORD not in r.text
    r = await client.post(
        CREDS,
        json={"username": "rescue", "password": PASSWORD, "role_id": "r-nope"},
        headers=admin_headers,
    )
    assert r.status_code == 400
    assert "unknown role" in r.json()["detail"]
    async with _browser(client) as browser:
        r = await browser.post(
            LOGIN,
            content=json.dumps({"username": "a", "password": "b"}),
            headers={"Content-Type": "text/plain"},
        )
        assert r.status_code == 400 and "application/json" in r.json()["detail"]
        r = await browser.post(LOGIN, json={"username": "a"})
        assert r.status_code == 400
    assert (await client.get(CREDS, headers=admin_headers)).json()["total"] == 0

    # Managing break-glass needs its permission, and creating an account the role's.
    assert (await client.get(CREDS, headers=viewer_headers)).status_code == 403
    r = await client.post(
        "/api/v1/auth/roles",
        json={"name": "bg-helper", "permissions": ["auth.breakglass.admin", "cert.read"]},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    role = r.json()["id"]
    r = await client.post(
        "/api/v1/auth/keys", json={"name": "bg-helper", "roles": [role]}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    helper = {"Authorization": f"Bearer {r.json()['key']}"}
    # May manage break-glass accounts, but not mint an admin...
    r = await client.post(CREDS, json={"username": "rescue", "password": PASSWORD}, headers=helper)
    assert r.status_code == 403 and "r-admin" in r.json()["detail"]
    # ...only accounts with a role it holds entirely itself.
    r = await client.post(
        CREDS, json={"username": "rescue", "password": PASSWORD, "role_id": role}, headers=helper
    )
    assert r.status_code == 201, r.text
    assert r.json()["role_id"] == role
    assert (await client.get(CREDS, headers=viewer_headers)).status_code == 403


async def test_new_password_ends_sessions_and_unlock(app_factory, admin_headers):
    client = await _app(app_factory, breakglass_lockout_threshold=2)
    first = await _create(client, admin_headers)
    async with _browser(client) as browser:
        assert (await _login(browser)).status_code == 200
        assert (await browser.get("/api/v1/auth/check")).status_code == 200
        new = "another-long-passphrase-77"
        r = await client.post(
            CREDS, json={"username": "rescue", "password": new}, headers=admin_headers
        )
        assert r.status_code == 200 and r.json()["actor_id"] == first["actor_id"]
        assert (await browser.get("/api/v1/auth/check")).status_code == 401  # session ended
        browser.cookies.clear()
        assert (await _login(browser)).status_code == 401  # the old password is gone
        assert (await _login(browser)).status_code == 401
        assert (await _login(browser, password=new)).status_code == 401  # locked now
        r = await client.post(f"{CREDS}/{first['actor_id']}/unlock", headers=admin_headers)
        assert r.status_code == 200 and r.json()["locked"] is False
        assert r.json()["failed_attempts"] == 0
        assert (await _login(browser, password=new)).status_code == 200
    r = await client.post(
        CREDS,
        json={"username": "rescue", "password": new, "role_id": "r-viewer"},
        headers=admin_headers,
    )
    assert r.status_code == 400 and "grants API" in r.json()["detail"]
    assert (
        await client.post(f"{CREDS}/usr-missing/unlock", headers=admin_headers)
    ).status_code == 404
    assert [o for o, *_ in await _audit(client, "auth.breakglass.unlock")] == ["success"]


async def test_removal_ends_everything_and_deactivation_refuses(app_factory, admin_headers):
    client = await _app(app_factory)
    created = await _create(client, admin_headers)
    actor_id = created["actor_id"]
    async with _browser(client) as browser:
        assert (await _login(browser)).status_code == 200
        r = await client.delete(f"{CREDS}/{actor_id}", headers=admin_headers)
        assert r.status_code == 204
        assert (await browser.get("/api/v1/auth/check")).status_code == 401
        browser.cookies.clear()
        assert (await _login(browser)).status_code == 401
    assert (await client.get(CREDS, headers=admin_headers)).json()["total"] == 0
    grants = (await client.get("/api/v1/auth/grants", headers=admin_headers)).json()
    grants = grants["data"] if isinstance(grants, dict) else grants
    assert [g for g in grants if g["actor_id"] == actor_id] == []
    assert (await client.delete(f"{CREDS}/{actor_id}", headers=admin_headers)).status_code == 404
    # The same username can be set up again: the old user row comes back to life.
    again = await _create(client, admin_headers)
    assert again["actor_id"] == actor_id
    async with _browser(client) as browser:
        assert (await _login(browser)).status_code == 200

    # A deactivated user (users API) is refused even with the right password.
    r = await client.delete(f"/api/v1/auth/users/{actor_id}", headers=admin_headers)
    assert r.status_code == 204
    async with _browser(client) as browser:
        assert (await _login(browser)).status_code == 403
        assert (await _login(browser, password="wrong-" + PASSWORD)).status_code == 401
    reasons = [d["reason"] for o, _, _, d in await _audit(client) if o != "success"]
    assert reasons[-2:] == ["user_deactivated", "wrong_password"]


async def test_hashing_is_bounded():
    """Sign-ins beyond the waiting room are refused at once instead of queueing forever."""
    from certctl.domain.breakglass import hashing
    from certctl.errors import ServiceUnavailable

    argon2 = Argon2(memory_kib=1024, time_cost=1, parallelism=1, concurrency=1)
    await argon2.prepare()
    results = await asyncio.gather(
        *(argon2.verify_or_dummy(None, "x") for _ in range(hashing.MAX_WAITING + 8)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, ServiceUnavailable)]
    assert len(refused) == 8
    assert all(r is False for r in results if not isinstance(r, Exception))


def _median_ms(samples):
    return statistics.median(samples) * 1000


async def test_wrong_password_unknown_user_and_locked_take_the_same_time(
    app_factory, admin_headers
):
    """Timing parity, measured: medians of interleaved samples per class.

    Argon2 runs at 16 MiB and two passes (about 30 ms here) instead of 64 MiB and three: long
    enough that skipping the verification for one class (the bug this catches) moves its
    median by the whole verification, far outside the tolerance, and short enough to take
    nine samples of each class in about a second.
    """
    client = await _app(
        app_factory,
        breakglass_argon2_memory_kib=16384,
        breakglass_argon2_time_cost=2,
        breakglass_argon2_parallelism=1,
        breakglass_lockout_threshold=10_000,
    )
    await _create(client, admin_headers, username="alice")
    await _create(client, admin_headers, username="bob")
    async with client.runtime.sessions.begin() as db:
        await db.execute(
            sa.text("UPDATE breakglass_credentials SET locked_until = :t WHERE username = 'bob'"),
            {"t": (utcnow() + timedelta(days=1)).replace(tzinfo=None)}
            if client.runtime.engine.dialect.name == "sqlite"
            else {"t": utcnow() + timedelta(days=1)},
        )
    argon2 = client.runtime.breakglass.argon2
    classes = {
        "wrong": ("alice", "wrong-" + PASSWORD),
        "unknown": ("carol", PASSWORD),
        "locked": ("bob", PASSWORD),
    }
    samples = {name: [] for name in (*classes, "verify")}
    async with _browser(client) as browser:
        await _login(browser, "carol", PASSWORD)  # warm-up
        for _ in range(15):
            # The bare verification is sampled in the same rounds, under the same load.
            started = time.perf_counter()
            await argon2.verify_or_dummy(None, PASSWORD)
            samples["verify"].append(time.perf_counter() - started)
            for name, (user, password) in classes.items():
                started = time.perf_counter()
                r = await _login(browser, user, password)
                samples[name].append(time.perf_counter() - started)
                assert r.status_code == 401
    cost = _median_ms(samples["verify"])
    assert cost > 5, "the verification must be long enough to be seen"
    for name in classes:
        # Every class paid one verification...
        assert _median_ms(samples[name]) > 0.7 * cost, (name, samples, cost)
        # ...and, compared round by round with the other two classes (so a load change on
        # the machine shifts both sides), is neither faster nor slower by a fraction of it.
        others = [n for n in classes if n != name]
        residual = _median_ms(
            [
                samples[name][i] - (samples[others[0]][i] + samples[others[1]][i]) / 2
                for i in range(len(samples[name]))
            ]
        )
        assert abs(residual) < 0.35 * cost, (name, residual, cost)
