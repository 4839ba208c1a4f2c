"""A real HTTP receiver on loopback, scripted per test, and a notifier wired to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from certctl_notifier_opsgenie import OpsgenieNotifier, OpsgenieNotifierConfig
from certctl_sdk import Notification, Secret, Severity
from certctl_sdk.testing import make_context
from certctl_sdk.testing.receiver import HttpReceiver as Receiver

API_KEY = "0a1b2c3d-genie-key-for-tests-0000"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def make_notifier(http: httpx.AsyncClient, receiver: Receiver):
    """A notifier sending to the receiver; ``overrides`` tune its config."""

    def build(**overrides: object) -> OpsgenieNotifier:
        settings: dict[str, Any] = {
            "api_key": Secret(API_KEY),
            "base_url": receiver.base_url,
            "timeout": 2.0,
        }
        settings.update(overrides)
        if "min_severity" in settings:
            settings["min_severity"] = Severity(settings["min_severity"])
        config = OpsgenieNotifierConfig(**settings)
        return OpsgenieNotifier(config, make_context(http=http, clock=lambda: NOW))

    return build


@pytest.fixture
def notification() -> Notification:
    return Notification(
        id="ntf_01JNGENIE",
        event="certificate.expiring",
        subject="www.example.com expires in 7 days",
        body="The certificate for www.example.com expires on 2025-03-08.",
        severity=Severity.WARNING,
        occurred_at=NOW,
        certificate_id="crt_42",
        data={"days_left": 7},
    )
