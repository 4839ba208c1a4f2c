"""A real HTTP receiver on loopback, scripted per test, and a notifier wired to it."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from certctl_notifier_teams import CardFormat, TeamsNotifier, TeamsNotifierConfig
from certctl_sdk import Notification, Secret, Severity
from certctl_sdk.testing import make_context

HOOK_PATH = "/workflows/abc123/triggers/manual/paths/invoke?api-version=1&sig=sEcReTt0kEn4tests"
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Reply:
    """What the receiver answers to one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as it arrived; ``json`` is the decoded body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 answering from a script; ``Reply()`` once it runs out."""

    Reply = Reply  # reachable from tests, which cannot import conftest in importlib mode

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(
                            "POST",
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    reply = receiver.script.pop(0) if receiver.script else Reply()
                if reply.delay:
                    receiver.release.wait(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout test); nothing to answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


@pytest.fixture
def hook_path() -> str:
    return HOOK_PATH


@pytest.fixture
def make_notifier(http: httpx.AsyncClient, receiver: Receiver):
    """A notifier posting to the receiver; ``overrides`` tune its config."""

    def build(**overrides: object) -> TeamsNotifier:
        settings: dict[str, Any] = {
            "webhook_url": Secret(receiver.base_url + HOOK_PATH),
            "timeout": 2.0,
        }
        settings.update(overrides)
        if "card" in settings:
            settings["card"] = CardFormat(settings["card"])
        config = TeamsNotifierConfig(**settings)
        return TeamsNotifier(config, make_context(http=http, clock=lambda: NOW))

    return build


@pytest.fixture
def notification() -> Notification:
    return Notification(
        id="ntf_01JNTEAMS",
        event="certificate.expiring",
        subject="www.example.com expires in 7 days",
        body="The certificate for <www.example.com> expires on 2025-03-08 & needs renewal.",
        severity=Severity.WARNING,
        occurred_at=NOW,
        certificate_id="crt_42",
        data={"days_left": 7},
    )
