"""Settings: CERTCTL_API_KEYS_NAMED rules, required secrets, typed variables, URL spellings."""

import pytest

from certctl.settings import (
    NamedApiKey,
    Settings,
    SettingsError,
    normalise_database_url,
    parse_named_api_keys,
)

ENCRYPTION_KEY = "settings-test-encryption-key-0123456789abcdef"
BASE_ENV = {"CERTCTL_CONFIG_ENCRYPTION_KEY": ENCRYPTION_KEY}


def from_env(**env: str) -> Settings:
    return Settings.from_env({**BASE_ENV, **env})


# --- CERTCTL_API_KEYS_NAMED -----------------------------------------------------------------


def test_named_keys_parse_names_keys_and_roles():
    keys = parse_named_api_keys("ops:k-ops-1:admin, grafana:k-graf-1,ci_bot-2:k-ci")
    assert keys == (
        NamedApiKey(name="ops", key="k-ops-1", admin=True),
        NamedApiKey(name="grafana", key="k-graf-1", admin=False),
        NamedApiKey(name="ci_bot-2", key="k-ci", admin=False),
    )
    assert parse_named_api_keys("") == ()
    assert parse_named_api_keys(" , ,") == ()


@pytest.mark.parametrize(
    "name",
    ["bad name", "bad.name", "bad/name", "caf\u00e9", "", "x" * 65, "a@b"],
)
def test_named_key_names_are_restricted(name):
    with pytest.raises(SettingsError, match=r"name must match \[A-Za-z0-9_-\]"):
        parse_named_api_keys(f"{name}:secret-value-1")


def test_named_key_name_may_be_64_characters():
    assert parse_named_api_keys("n" * 64 + ":k")[0].name == "n" * 64


@pytest.mark.parametrize("flag", ["Admin", "ADMIN", "yes", "true", "", "admins"])
def test_third_field_must_be_the_literal_admin(flag):
    with pytest.raises(SettingsError, match="third field must be 'admin'"):
        parse_named_api_keys(f"ops:secret-value-1:{flag}")


@pytest.mark.parametrize("entry", ["ops", "ops:k:admin:extra"])
def test_entries_need_two_or_three_fields(entry):
    with pytest.raises(SettingsError, match="expected name:key or name:key:admin"):
        parse_named_api_keys(entry)


@pytest.mark.parametrize("entry", ["ops:", "ops::admin"])
def test_empty_key_is_rejected(entry):
    with pytest.raises(SettingsError, match="empty key"):
        parse_named_api_keys(entry)


@pytest.mark.parametrize(
    "entry", ["ops: leading-space", "ops:trailing-space :admin", "ops:in side"]
)
def test_key_with_whitespace_is_rejected(entry):
    with pytest.raises(SettingsError, match="whitespace") as info:
        parse_named_api_keys(entry)
    for fragment in ("leading-space", "trailing-space", "in side"):
        assert fragment not in str(info.value)


def test_same_name_with_different_keys_is_a_rotation_window():
    keys = parse_named_api_keys("ops:old-key-1:admin,ops:new-key-2:admin")
    assert [(k.name, k.key, k.admin) for k in keys] == [
        ("ops", "old-key-1", True),
        ("ops", "new-key-2", True),
    ]


def test_identical_pair_is_rejected():
    with pytest.raises(SettingsError, match="listed twice") as info:
        parse_named_api_keys("ops:same-key-value,grafana:g,ops:same-key-value")
    assert "entry 3" in str(info.value)


def test_rotation_cannot_change_the_admin_flag():
    with pytest.raises(SettingsError, match="same admin flag"):
        parse_named_api_keys("ops:old-key-1:admin,ops:new-key-2")
    with pytest.raises(SettingsError, match="same admin flag"):
        parse_named_api_keys("ops:old-key-1,ops:new-key-2:admin")


@pytest.mark.parametrize(
    "raw",
    [
        "ops:do-not-print-me:admn",
        "ops:do-not-print-me,ops:do-not-print-me",
        "ops:do-not-print-me:admin,ops:do-not-print-me-too",
        "bad name:do-not-print-me",
        "ops:do-not-print-me :admin",
    ],
)
def test_errors_never_show_the_key(raw):
    with pytest.raises(SettingsError) as info:
        parse_named_api_keys(raw)
    assert "do-not-print-me" not in str(info.value)
    assert "CERTCTL_API_KEYS_NAMED" in str(info.value)


def test_from_env_reads_named_keys():
    settings = from_env(CERTCTL_API_KEYS_NAMED="ops:k1:admin,ops:k2:admin")
    assert [k.key for k in settings.api_keys_named] == ["k1", "k2"]
    with pytest.raises(SettingsError, match="CERTCTL_API_KEYS_NAMED"):
        from_env(CERTCTL_API_KEYS_NAMED="ops:k1,ops:k1")


async def test_both_keys_of_a_rotation_window_authenticate(app_factory):
    client = await app_factory(
        api_keys_named=parse_named_api_keys(
            "ops:old-rotation-key-1:admin,ops:new-rotation-key-2:admin"
        )
    )
    for key in ("old-rotation-key-1", "new-rotation-key-2"):
        r = await client.get("/api/v1/auth/check", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "ops"
        assert r.json()["roles"] == ["r-admin"]
        r = await client.get("/api/v1/profiles", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
    r = await client.get("/api/v1/auth/check", headers={"Authorization": "Bearer retired-key"})
    assert r.status_code == 401


# --- encryption key ----------------------------------------------------------------------------


def test_encryption_key_is_required_outside_demo():
    with pytest.raises(SettingsError, match="CERTCTL_CONFIG_ENCRYPTION_KEY is required"):
        Settings.from_env({})
    with pytest.raises(SettingsError, match="CERTCTL_CONFIG_ENCRYPTION_KEY is required"):
        Settings.from_env({"CERTCTL_CONFIG_ENCRYPTION_KEY": ""})


def test_demo_mode_runs_without_an_encryption_key():
    settings = Settings.from_env({"CERTCTL_DEMO_SEED": "true"})
    assert settings.demo is True
    assert settings.config_encryption_key == ""


def test_encryption_key_needs_32_characters():
    with pytest.raises(SettingsError, match="at least 32 characters"):
        Settings.from_env({"CERTCTL_CONFIG_ENCRYPTION_KEY": "k" * 31})
    # Demo mode does not relax the length of a key that is given.
    with pytest.raises(SettingsError, match="at least 32 characters"):
        Settings.from_env({"CERTCTL_CONFIG_ENCRYPTION_KEY": "k" * 31, "CERTCTL_DEMO_SEED": "1"})
    assert Settings.from_env({"CERTCTL_CONFIG_ENCRYPTION_KEY": "k" * 32}).config_encryption_key


# --- typed variables ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " On "])
def test_true_spellings(raw):
    assert from_env(CERTCTL_TRACE_PLUGINS=raw).trace_plugins is True


@pytest.mark.parametrize("raw", ["0", "false", "no", "off", "OFF"])
def test_false_spellings(raw):
    assert from_env(CERTCTL_WORKER_ENABLED=raw).worker_enabled is False


@pytest.mark.parametrize(
    "variable", ["CERTCTL_DEMO_SEED", "CERTCTL_WORKER_ENABLED", "CERTCTL_TRACE_PLUGINS"]
)
def test_bad_boolean_names_the_variable(variable):
    with pytest.raises(SettingsError, match=f"^{variable}: expected true or false, got 'maybe'"):
        from_env(**{variable: "maybe"})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CERTCTL_SERVER_PORT", "https", "expected an integer, got 'https'"),
        ("CERTCTL_SERVER_PORT", "0", "must be at least 1"),
        ("CERTCTL_WORKER_CONCURRENCY", "1.5", "expected an integer"),
        ("CERTCTL_WORKER_CONCURRENCY", "0", "must be at least 1"),
        ("CERTCTL_JOB_MAX_ATTEMPTS", "-3", "must be at least 1"),
        ("CERTCTL_MAX_BODY_SIZE", "100", "must be at least 1024"),
        ("CERTCTL_DATABASE_MAX_CONNS", "ten", "expected an integer"),
        ("CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL", "soon", "expected a positive duration"),
        ("CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL", "0", "expected a positive duration"),
        ("CERTCTL_SCHEDULER_JITTER", "0.9", "must be between 0 and 0.5"),
        ("CERTCTL_SCHEDULER_HEARTBEAT", "-1", "expected a positive duration"),
    ],
)
def test_bad_numbers_name_the_variable(variable, value, message):
    with pytest.raises(SettingsError, match=f"^{variable}: ") as info:
        from_env(**{variable: value})
    assert message in str(info.value)


def test_numbers_and_lists_are_read():
    settings = from_env(
        CERTCTL_SERVER_PORT="9443",
        CERTCTL_WORKER_CONCURRENCY="3",
        CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL="2.5",
        CERTCTL_SCHEDULER_JOB_PROCESSOR_INTERVAL="1m",
        CERTCTL_LOAD_PLUGINS="certctl-issuer-local, certctl-target-nginx,",
        CERTCTL_LOG_LEVEL="DEBUG",
    )
    assert settings.server_port == 9443
    assert settings.worker_concurrency == 3
    assert settings.loop_intervals == {"renewal-check": 2.5, "job-processor": 60.0}
    assert settings.load_plugins == ("certctl-issuer-local", "certctl-target-nginx")
    assert settings.log_level == "debug"
    # Unset means "load everything"; set but empty means "load nothing".
    assert from_env().load_plugins is None
    assert from_env(CERTCTL_LOAD_PLUGINS="").load_plugins == ()


def test_unknown_auth_type_and_log_level_are_rejected():
    with pytest.raises(SettingsError, match="CERTCTL_AUTH_TYPE"):
        from_env(CERTCTL_AUTH_TYPE="jwt")
    with pytest.raises(SettingsError, match="CERTCTL_LOG_LEVEL"):
        from_env(CERTCTL_LOG_LEVEL="verbose")


def test_auth_none_only_in_demo_mode():
    with pytest.raises(SettingsError, match="CERTCTL_AUTH_TYPE=none"):
        from_env(CERTCTL_AUTH_TYPE="none")
    assert from_env(CERTCTL_AUTH_TYPE="none", CERTCTL_DEMO_SEED="true").auth_type == "none"


@pytest.mark.parametrize(
    "env",
    [
        {"CERTCTL_SERVER_TLS_CERT_PATH": "/etc/certctl/server.crt"},
        {"CERTCTL_SERVER_TLS_KEY_PATH": "/etc/certctl/server.key"},
    ],
)
def test_tls_paths_come_in_pairs(env):
    with pytest.raises(SettingsError) as info:
        from_env(**env)
    message = str(info.value)
    assert "CERTCTL_SERVER_TLS_CERT_PATH" in message
    assert "CERTCTL_SERVER_TLS_KEY_PATH" in message


# --- database URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/certctl", "postgresql+asyncpg://u:p@db:5432/certctl"),
        ("postgresql://u:p@db/certctl", "postgresql+asyncpg://u:p@db/certctl"),
        ("postgresql+asyncpg://u@db/certctl", "postgresql+asyncpg://u@db/certctl"),
        ("sqlite:///var/lib/certctl/c.db", "sqlite+aiosqlite:///var/lib/certctl/c.db"),
        ("sqlite+aiosqlite:////abs/c.db", "sqlite+aiosqlite:////abs/c.db"),
        ("", ""),
    ],
)
def test_database_url_normalisation(given, expected):
    assert normalise_database_url(given) == expected
    assert from_env(CERTCTL_DATABASE_URL=given).database_url == expected


def test_database_url_override_is_normalised_too():
    settings = Settings.from_env(BASE_ENV, database_url="postgres://u:p@db/certctl")
    assert settings.database_url == "postgresql+asyncpg://u:p@db/certctl"


def test_default_database_is_sqlite_in_the_data_dir(tmp_path):
    settings = from_env(CERTCTL_DATA_DIR=str(tmp_path))
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path.resolve()}/certctl.db"


def test_overrides_win_over_the_environment():
    settings = Settings.from_env(
        {**BASE_ENV, "CERTCTL_SERVER_PORT": "9000"}, server_port=9100, server_host=None
    )
    assert settings.server_port == 9100
    assert settings.server_host == "127.0.0.1"


# --- nothing secret in repr --------------------------------------------------------------------


def test_repr_never_contains_secrets():
    secrets = {
        "admin": "repr-admin-key-0123456789",
        "viewer": "repr-viewer-key-0123456789",
        "token": "repr-bootstrap-token-0123456789",
        "encryption": "repr-encryption-key-0123456789-abcdefghij",
        "password": "repr-db-password-0123456789",
    }
    settings = Settings.from_env(
        {
            "CERTCTL_CONFIG_ENCRYPTION_KEY": secrets["encryption"],
            "CERTCTL_API_KEYS_NAMED": f"ops:{secrets['admin']}:admin,ro:{secrets['viewer']}",
            "CERTCTL_BOOTSTRAP_TOKEN": secrets["token"],
            "CERTCTL_DATABASE_URL": f"postgres://certctl:{secrets['password']}@db:5432/certctl",
        }
    )
    renderings = [
        repr(settings),
        str(settings),
        f"{settings!r}",
        repr(settings.api_keys_named),
        str(settings.api_keys_named[0]),
    ]
    for text in renderings:
        for secret in secrets.values():
            assert secret not in text, (secret, text)
    assert "db:5432/certctl" in repr(settings)
    assert "ops" in repr(settings.api_keys_named)


def test_ocsp_settings_defaults_and_durations():
    settings = from_env()
    assert settings.ocsp_responder_validity_seconds == 30 * 86400
    assert settings.ocsp_rotation_grace_seconds == 7 * 86400
    assert settings.ocsp_rate_limit_per_ip_min == 1000
    settings = from_env(
        CERTCTL_OCSP_RESPONDER_VALIDITY="720h",
        CERTCTL_OCSP_ROTATION_GRACE="3600",
        CERTCTL_OCSP_RATE_LIMIT_PER_IP_MIN="0",
    )
    assert settings.ocsp_responder_validity_seconds == 30 * 86400
    assert settings.ocsp_rotation_grace_seconds == 3600
    assert settings.ocsp_rate_limit_per_ip_min == 0
    assert from_env(CERTCTL_OCSP_ROTATION_GRACE="15m").ocsp_rotation_grace_seconds == 900


@pytest.mark.parametrize("value", ["30 days", "-1d", "1w", "0"])
def test_bad_ocsp_durations_name_the_variable(value):
    with pytest.raises(SettingsError, match="CERTCTL_OCSP_RESPONDER_VALIDITY"):
        from_env(CERTCTL_OCSP_RESPONDER_VALIDITY=value)


def test_ocsp_grace_must_be_shorter_than_the_validity():
    with pytest.raises(SettingsError, match="CERTCTL_OCSP_ROTATION_GRACE"):
        from_env(CERTCTL_OCSP_RESPONDER_VALIDITY="7d", CERTCTL_OCSP_ROTATION_GRACE="7d")


def test_approval_settings_defaults_and_durations():
    settings = from_env()
    assert settings.approval_bypass is False
    assert settings.job_awaiting_approval_timeout_seconds == 168 * 3600
    settings = from_env(CERTCTL_APPROVAL_BYPASS="true", CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT="72h")
    assert settings.approval_bypass is True
    assert settings.job_awaiting_approval_timeout_seconds == 72 * 3600
    assert (
        from_env(CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT="7d").job_awaiting_approval_timeout_seconds
        == 7 * 86400
    )
    with pytest.raises(SettingsError, match="CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT"):
        from_env(CERTCTL_JOB_AWAITING_APPROVAL_TIMEOUT="a week")
    with pytest.raises(SettingsError, match="CERTCTL_APPROVAL_BYPASS"):
        from_env(CERTCTL_APPROVAL_BYPASS="maybe")


def test_notification_renewal_and_digest_settings():
    settings = from_env()
    assert settings.notification_max_attempts == 5
    assert settings.notification_lease_seconds == 300
    assert settings.expiry_alert_thresholds_days == (30, 14, 7, 0)
    assert (settings.renewal_jitter_percent, settings.digest_enabled) == (10, False)
    assert settings.digest_notifier_ids == ()
    settings = from_env(
        CERTCTL_NOTIFICATION_MAX_ATTEMPTS="2",
        CERTCTL_NOTIFICATION_LEASE="2m",
        CERTCTL_EXPIRY_ALERT_THRESHOLDS="7, 60,0,7",
        CERTCTL_RENEWAL_JITTER_PERCENT="25",
        CERTCTL_DIGEST_ENABLED="true",
        CERTCTL_DIGEST_NOTIFIER_IDS="ntf-a, ntf-b",
    )
    assert settings.notification_max_attempts == 2
    assert settings.notification_lease_seconds == 120
    assert settings.expiry_alert_thresholds_days == (60, 7, 0)
    assert settings.renewal_jitter_percent == 25
    assert settings.digest_enabled is True
    assert settings.digest_notifier_ids == ("ntf-a", "ntf-b")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CERTCTL_EXPIRY_ALERT_THRESHOLDS", "30,x"),
        ("CERTCTL_EXPIRY_ALERT_THRESHOLDS", "400"),
        ("CERTCTL_RENEWAL_JITTER_PERCENT", "51"),
        ("CERTCTL_NOTIFICATION_MAX_ATTEMPTS", "0"),
    ],
)
def test_bad_notification_settings_name_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        from_env(**{variable: value})


def test_ocsp_refresh_interval():
    assert from_env().ocsp_refresh_ms == 500
    assert from_env(CERTCTL_OCSP_REFRESH_MS="0").ocsp_refresh_ms == 0
    with pytest.raises(SettingsError, match="CERTCTL_OCSP_REFRESH_MS"):
        from_env(CERTCTL_OCSP_REFRESH_MS="-5")
    with pytest.raises(SettingsError, match="CERTCTL_OCSP_REFRESH_MS"):
        from_env(CERTCTL_OCSP_REFRESH_MS="half a second")
