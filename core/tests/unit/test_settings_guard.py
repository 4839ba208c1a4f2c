"""Settings of the rate limit and break-glass: defaults, spellings, refusals."""

import pytest

from certctl.settings import Settings, SettingsError

BASE_ENV = {"CERTCTL_CONFIG_ENCRYPTION_KEY": "settings-test-encryption-key-0123456789abcdef"}


def from_env(**env: str) -> Settings:
    return Settings.from_env({**BASE_ENV, **env})


def test_defaults_follow_the_reference():
    s = from_env()
    assert s.rate_limit_enabled is True
    assert (s.rate_limit_rps, s.rate_limit_burst) == (50.0, 100)
    assert (s.rate_limit_per_user_rps, s.rate_limit_per_user_burst) == (0.0, 0)
    assert s.rate_limit_bucket_ttl_seconds == 3600 and s.rate_limit_lease == 10
    assert s.trusted_proxies == ()
    assert s.breakglass_enabled is False
    assert (
        s.breakglass_lockout_threshold,
        s.breakglass_lockout_duration_seconds,
        s.breakglass_lockout_reset_seconds,
    ) == (5, 30, 3600)
    assert s.breakglass_login_per_ip_min == 5 and s.breakglass_min_password_length == 16
    assert (
        s.breakglass_argon2_memory_kib,
        s.breakglass_argon2_time_cost,
        s.breakglass_argon2_parallelism,
    ) == (65536, 3, 4)


def test_variables_are_read():
    s = from_env(
        CERTCTL_RATE_LIMIT_ENABLED="false",
        CERTCTL_RATE_LIMIT_RPS="2.5",
        CERTCTL_RATE_LIMIT_BURST="7",
        CERTCTL_RATE_LIMIT_PER_USER_RPS="10",
        CERTCTL_RATE_LIMIT_PER_USER_BURST="20",
        CERTCTL_RATE_LIMIT_BUCKET_TTL="15m",
        CERTCTL_RATE_LIMIT_LEASE="1",
        CERTCTL_TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.1,fd00::/8",
        CERTCTL_BREAKGLASS_ENABLED="true",
        CERTCTL_BREAKGLASS_LOCKOUT_THRESHOLD="3",
        CERTCTL_BREAKGLASS_LOCKOUT_DURATION="15m",
        CERTCTL_BREAKGLASS_LOCKOUT_RESET_INTERVAL="2h",
        CERTCTL_BREAKGLASS_LOGIN_RATE_LIMIT_PER_MIN="10",
        CERTCTL_BREAKGLASS_MIN_PASSWORD_LENGTH="20",
        CERTCTL_BREAKGLASS_HASH_CONCURRENCY="1",
    )
    assert s.rate_limit_enabled is False
    assert (s.rate_limit_rps, s.rate_limit_burst) == (2.5, 7)
    assert (s.rate_limit_per_user_rps, s.rate_limit_per_user_burst) == (10.0, 20)
    assert s.rate_limit_bucket_ttl_seconds == 900 and s.rate_limit_lease == 1
    assert s.trusted_proxies == ("10.0.0.0/8", "192.0.2.1", "fd00::/8")
    assert s.breakglass_enabled is True
    assert s.breakglass_lockout_threshold == 3
    assert s.breakglass_lockout_duration_seconds == 900
    assert s.breakglass_lockout_reset_seconds == 7200
    assert s.breakglass_login_per_ip_min == 10 and s.breakglass_min_password_length == 20
    assert s.breakglass_hash_concurrency == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CERTCTL_RATE_LIMIT_RPS": "fast"}, "CERTCTL_RATE_LIMIT_RPS: expected a number"),
        ({"CERTCTL_RATE_LIMIT_RPS": "-1"}, "CERTCTL_RATE_LIMIT_RPS: must be a finite number"),
        ({"CERTCTL_RATE_LIMIT_RPS": "inf"}, "CERTCTL_RATE_LIMIT_RPS: must be a finite number"),
        ({"CERTCTL_RATE_LIMIT_RPS": "0"}, "must be positive while limits are on"),
        ({"CERTCTL_RATE_LIMIT_BURST": "0"}, "CERTCTL_RATE_LIMIT_BURST: must be at least 1"),
        ({"CERTCTL_RATE_LIMIT_LEASE": "0"}, "CERTCTL_RATE_LIMIT_LEASE: must be at least 1"),
        ({"CERTCTL_TRUSTED_PROXIES": "10.0.0.0/8,nonsense"}, "CERTCTL_TRUSTED_PROXIES: 'nonsense'"),
        ({"CERTCTL_BREAKGLASS_LOCKOUT_THRESHOLD": "0"}, "must be at least 1"),
        ({"CERTCTL_BREAKGLASS_MIN_PASSWORD_LENGTH": "8"}, "must be at least 12"),
        (
            {
                "CERTCTL_BREAKGLASS_LOCKOUT_DURATION": "2h",
                "CERTCTL_BREAKGLASS_LOCKOUT_RESET_INTERVAL": "1h",
            },
            "must not be shorter than CERTCTL_BREAKGLASS_LOCKOUT_DURATION",
        ),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env, message):
    with pytest.raises(SettingsError) as caught:
        from_env(**env)
    assert message in str(caught.value)


def test_zero_rps_is_fine_while_the_limit_is_off():
    assert (
        from_env(CERTCTL_RATE_LIMIT_ENABLED="false", CERTCTL_RATE_LIMIT_RPS="0").rate_limit_rps == 0
    )
