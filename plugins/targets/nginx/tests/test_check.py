"""check() failure modes that need no nginx: a missing binary and a hung command."""

from __future__ import annotations

import time

from certctl_sdk import decode_config
from certctl_sdk.testing import make_context
from certctl_target_nginx import NginxTarget, NginxTargetConfig


def target(**settings: object) -> NginxTarget:
    base = {"cert_path": "/etc/ssl/site.pem", "key_path": "/etc/ssl/site.key"}
    return NginxTarget(decode_config(NginxTargetConfig, {**base, **settings}), make_context())


async def test_missing_binary_is_reported(tmp_path):
    result = await target(nginx_binary=str(tmp_path / "no-such-nginx")).check()

    assert not result.ok
    assert "cannot run" in result.message


async def test_hung_validate_command_is_killed(tmp_path):
    started = time.monotonic()

    result = await target(validate_command=["sleep", "30"], command_timeout=0.3).check()

    assert not result.ok
    assert "did not finish within 0.3 s" in result.message
    assert time.monotonic() - started < 5


async def test_failing_validate_command_reports_its_output():
    result = await target(validate_command=["sh", "-c", "echo broken thing >&2; exit 3"]).check()

    assert not result.ok
    assert "exit 3" in result.message
    assert "broken thing" in result.message
