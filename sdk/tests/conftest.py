"""SDK test fixtures. ``tls_server`` starts a TLS server that behaves like nginx about reloads.

It serves the certificate files it loaded at its last "reload" and reloads only when the
``reloads`` file the test's reload command appends to has grown. The TLS context is chosen per
connection and the handshake is started with ``start_tls`` from a plain socket, so no SNI is
needed and the same server can speak SMTP/IMAP/POP3 STARTTLS first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from certctl_sdk.filedeploy import StartTls


class ReloadingTlsServer:
    def __init__(self, cert: Path, key: Path, reloads: Path, starttls: StartTls | None = None):
        self.cert = cert
        self.key = key
        self.reloads = reloads
        self.starttls = starttls
        self.loaded_generation = -1
        self.context: ssl.SSLContext | None = None
        self.handshakes = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    def generation(self) -> int:
        return len(self.reloads.read_text().splitlines()) if self.reloads.exists() else 0

    def current_context(self) -> ssl.SSLContext:
        generation = self.generation()
        if self.context is None or generation != self.loaded_generation:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.cert, self.key)
            self.context, self.loaded_generation = context, generation
        return self.context

    async def start(self) -> None:
        self.current_context()  # like a server starting: load the files once
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.starttls is StartTls.SMTP:
                writer.write(b"220 test ESMTP\r\n")
                await reader.readline()  # EHLO
                writer.write(b"250-test\r\n250 STARTTLS\r\n")
                await reader.readline()  # STARTTLS
                writer.write(b"220 go ahead\r\n")
            elif self.starttls is StartTls.IMAP:
                writer.write(b"* OK IMAP4rev1 ready\r\n")
                tag = (await reader.readline()).split(b" ", 1)[0]
                writer.write(tag + b" OK begin TLS\r\n")
            elif self.starttls is StartTls.POP3:
                writer.write(b"+OK POP3 ready\r\n")
                await reader.readline()  # STLS
                writer.write(b"+OK begin TLS\r\n")
            await writer.drain()
            await writer.start_tls(self.current_context())
            self.handshakes += 1
            await reader.read(1)  # wait for the client to hang up
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


ServerFactory = Callable[..., Awaitable[ReloadingTlsServer]]


@pytest.fixture
async def tls_server() -> AsyncIterator[ServerFactory]:
    """``await tls_server(cert, key, reloads, starttls=None)`` starts a server; all are stopped."""
    servers: list[ReloadingTlsServer] = []

    async def start(
        cert: Path, key: Path, reloads: Path, starttls: StartTls | None = None
    ) -> ReloadingTlsServer:
        server = ReloadingTlsServer(cert, key, reloads, starttls)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()
