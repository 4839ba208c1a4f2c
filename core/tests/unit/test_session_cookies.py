"""The session cookie's format and MAC, the Set-Cookie attributes, and the session settings."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from litestar import Response

from certctl.domain.sessions.cookies import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    clearing_cookies,
    cookie_mac,
    encode_cookie,
    new_secret,
    parse_cookie,
    verify_mac,
)
from certctl.domain.sessions.service import IssuedSession, set_session_cookies
from certctl.scheduler.loops import builtin_loops
from certctl.settings import Settings, SettingsError

KEY = bytes(range(32))
KEY_ID = "sk-0123456789abcdef"
ENV = {"CERTCTL_CONFIG_ENCRYPTION_KEY": "unit-test-encryption-key-0123456789abcdef"}


def test_the_mac_is_hmac_sha256_over_length_prefixed_fields():
    token = "t" * 43
    message = b"".join(
        len(f).to_bytes(4, "big") + f for f in (b"v1", token.encode(), KEY_ID.encode())
    )
    assert cookie_mac(KEY, "v1", token, KEY_ID) == hmac.new(KEY, message, hashlib.sha256).digest()


def test_fields_cannot_be_shifted_into_each_other():
    """The same concatenation split at another place has another MAC."""
    assert cookie_mac(KEY, "v1", "abc", "sk-1") != cookie_mac(KEY, "v1", "ab", "csk-1")
    assert cookie_mac(KEY, "v1", "abc", "sk-1") != cookie_mac(KEY, "v1a", "bc", "sk-1")
    assert cookie_mac(KEY, "v1", "abc", "sk-1") != cookie_mac(KEY, "v", "1abc", "sk-1")


def test_a_cookie_round_trips_and_any_changed_character_breaks_it():
    token = new_secret()
    value = encode_cookie(token, KEY_ID, KEY)
    parsed = parse_cookie(value)
    assert parsed is not None
    assert (parsed.token, parsed.key_id) == (token, KEY_ID)
    assert verify_mac(KEY, parsed)
    assert not verify_mac(b"\x00" * 32, parsed)
    for i, char in enumerate(value):
        if char == ".":
            continue
        changed = value[:i] + ("B" if char == "A" else "A") + value[i + 1 :]
        tampered = parse_cookie(changed)
        assert tampered is None or not verify_mac(KEY, tampered), i


@pytest.mark.parametrize(
    "value",
    [
        "",
        "v1",
        "v1...",
        "v2.{t}.{k}.{m}",
        "v1.{t}.{k}.{m}.extra",
        "v1.{t}.{k}",
        "v1.{t}x.{k}.{m}",  # token of the wrong length
        "v1.{t}.sk-XYZ.{m}",  # key id of the wrong shape
        "v1.{t}.{k}.{m}==",  # padded
        "v1.{t}.{k}.{mx}",  # non-canonical spelling of the same MAC bytes
        "v1.{t}.{k}.{m}" + "A" * 300,
        "v1.{t}+.{k}.{m}",  # not base64url
    ],
)
def test_malformed_cookies_do_not_parse(value):
    token = new_secret()
    good = encode_cookie(token, KEY_ID, KEY)
    mac = good.rsplit(".", 1)[1]
    non_canonical = mac[:-1] + chr(ord(mac[-1]) + 1)
    assert base64.urlsafe_b64decode(non_canonical + "=") == base64.urlsafe_b64decode(mac + "=")
    value = value.format(t=token, k=KEY_ID, m=mac, mx=non_canonical)
    assert parse_cookie(value) is None


def _settings(**env):
    return Settings.from_env({**ENV, **env})


def _attributes(cookie):
    return [a.strip().lower() for a in cookie.to_header(header="").strip().split(";")]


@pytest.mark.parametrize("samesite", ["lax", "strict"])
def test_cookie_attributes(samesite):
    settings = _settings(CERTCTL_SESSION_SAMESITE=samesite.upper())
    issued = IssuedSession(
        session_id="ses-0123456789abcdef",
        cookie_value=encode_cookie(new_secret(), KEY_ID, KEY),
        csrf_token=new_secret(),
        user_id="usr-1",
        auth_method="sso",
        provider_id="op-1",
        expires_at=datetime.now(UTC),
    )
    response = Response(None)
    set_session_cookies(response, issued, settings)
    cookies = {c.key: _attributes(c) for c in response.cookies}
    assert set(cookies) == {SESSION_COOKIE, CSRF_COOKIE}
    assert cookies[SESSION_COOKIE][0] == f"{SESSION_COOKIE}={issued.cookie_value}".lower()
    assert cookies[CSRF_COOKIE][0] == f"{CSRF_COOKIE}={issued.csrf_token}".lower()
    for attrs in cookies.values():
        assert "secure" in attrs
        assert "path=/" in attrs
        assert f"samesite={samesite}" in attrs
        assert not any(a.startswith("domain") for a in attrs)  # __Host-: host-only
        assert f"max-age={8 * 3600}" in attrs
    assert "httponly" in cookies[SESSION_COOKIE]
    assert "httponly" not in cookies[CSRF_COOKIE]  # the page's scripts echo it
    for cookie in clearing_cookies(samesite):
        attrs = _attributes(cookie)
        assert {"max-age=0", "secure", "path=/", f"samesite={samesite}"} <= set(attrs)


def test_session_settings():
    default = _settings()
    assert (default.session_idle_timeout, default.session_absolute_timeout) == (3600, 8 * 3600)
    assert default.session_signing_key_rotation == 7 * 86400
    assert default.session_signing_key_retention == 86400
    assert (default.session_bind_ip, default.session_bind_user_agent) == (False, False)
    assert default.session_samesite == "lax"
    custom = _settings(
        CERTCTL_SESSION_IDLE_TIMEOUT="15m",
        CERTCTL_SESSION_ABSOLUTE_TIMEOUT="2h",
        CERTCTL_SESSION_SIGNING_KEY_ROTATION="1d",
        CERTCTL_SESSION_SIGNING_KEY_RETENTION="3h",
        CERTCTL_SESSION_BIND_IP="true",
        CERTCTL_SESSION_BIND_USER_AGENT="yes",
        CERTCTL_SESSION_SAMESITE="Strict",
    )
    assert (custom.session_idle_timeout, custom.session_absolute_timeout) == (900, 7200)
    assert (custom.session_signing_key_rotation, custom.session_signing_key_retention) == (
        86400,
        10800,
    )
    assert custom.session_bind_ip and custom.session_bind_user_agent
    assert custom.session_samesite == "strict"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CERTCTL_SESSION_SAMESITE": "none"}, "CERTCTL_SESSION_SAMESITE"),
        ({"CERTCTL_SESSION_IDLE_TIMEOUT": "soon"}, "CERTCTL_SESSION_IDLE_TIMEOUT"),
        ({"CERTCTL_SESSION_IDLE_TIMEOUT": "9h"}, "must not exceed"),
        ({"CERTCTL_SESSION_SIGNING_KEY_RETENTION": "1h"}, "at least"),
        ({"CERTCTL_SESSION_BIND_IP": "maybe"}, "CERTCTL_SESSION_BIND_IP"),
    ],
)
def test_bad_session_settings_are_refused(env, message):
    with pytest.raises(SettingsError, match=message):
        _settings(**env)


def test_session_gc_is_an_hourly_leader_loop():
    specs = {s.name: s for s in builtin_loops(SimpleNamespace(settings=_settings()))}
    spec = specs["session-gc"]
    assert (spec.interval, spec.leader_only) == (3600.0, True)
