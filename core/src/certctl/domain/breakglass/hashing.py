"""Argon2id for break-glass passwords, off the event loop and bounded.

One Argon2id computation at the production cost (64 MiB, 3 passes, 4 lanes) takes a fifth of
a second of CPU and 64 MiB of memory. Run on the event loop it would stall every other request
for that long, so it runs in a worker thread; and because a flood of sign-ins would otherwise
start one thread (and 64 MiB) per request, at most ``concurrency`` run at once and at most
:data:`MAX_WAITING` wait — beyond that the sign-in is refused with 503 before any work.

:meth:`Argon2.verify_or_dummy` is the only way the sign-in checks a password: with no stored
hash (unknown user, locked account) it verifies against a dummy hash made at start with the
same parameters, so every attempt costs the same.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from certctl.errors import ServiceUnavailable

__all__ = ["HASH_LENGTH", "MAX_WAITING", "SALT_LENGTH", "Argon2"]

SALT_LENGTH = 16
HASH_LENGTH = 32
MAX_WAITING = 32
"""Sign-ins waiting for an Argon2 slot at most; more are refused (503)."""

T = TypeVar("T")


class Argon2:
    """Argon2id hashing and verification with bounded concurrency."""

    def __init__(
        self, *, memory_kib: int, time_cost: int, parallelism: int, concurrency: int
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=HASH_LENGTH,
            salt_len=SALT_LENGTH,
            type=Type.ID,
        )
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._inside = 0
        self._dummy: str | None = None

    def check_capacity(self) -> None:
        """503 when the waiting room is full (checked before a sign-in does anything)."""
        if self._inside >= MAX_WAITING:
            raise ServiceUnavailable("too many sign-ins in progress; retry in a few seconds")

    async def _run(self, fn: Callable[[], T]) -> T:
        """``fn`` in a worker thread, holding a slot until the thread is done."""
        self.check_capacity()
        self._inside += 1
        try:
            async with self._slots:
                task = asyncio.ensure_future(asyncio.to_thread(fn))
                try:
                    return await asyncio.shield(task)
                except asyncio.CancelledError:
                    # The thread cannot be stopped: keep its slot until it ends.
                    await asyncio.wait([task])
                    raise
        finally:
            self._inside -= 1

    async def prepare(self) -> None:
        """Make the dummy hash (at start, so the first unknown user costs no extra hash)."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(32))

    async def hash(self, password: str) -> str:
        """The PHC string of ``password`` with a fresh 16-byte salt."""
        return await self._run(lambda: self._hasher.hash(password))

    def needs_rehash(self, phc: str) -> bool:
        """Whether ``phc`` was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(phc)
        except InvalidHashError:
            return True

    async def verify_or_dummy(self, phc: str | None, password: str) -> bool:
        """Whether ``password`` matches ``phc``; always one full verification, None included."""
        if self._dummy is None:
            await self.prepare()
        assert self._dummy is not None
        target = phc if phc is not None else self._dummy

        def check() -> bool:
            try:
                return self._hasher.verify(target, password)
            except (VerificationError, InvalidHashError):
                return False

        matched = await self._run(check)
        return matched and phc is not None
