"""In-process word that issuance jobs have settled, so a waiting request re-reads at once.

:func:`certctl.domain.certificates.waiting.await_issuance` polls the job row, which is what
makes it right across replicas; when the job runs in this process's worker, the worker rings
here after committing and the waiter looks again without sitting out its poll interval.
A ring carries no state: the waiter always reads the outcome from the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["notify", "watch"]

_waiters: dict[str, set[asyncio.Event]] = {}


@contextmanager
def watch(job_id: str) -> Iterator[asyncio.Event]:
    """An event set whenever this process's worker settles ``job_id`` (done, failed, retried)."""
    event = asyncio.Event()
    _waiters.setdefault(job_id, set()).add(event)
    try:
        yield event
    finally:
        waiting = _waiters.get(job_id)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del _waiters[job_id]


def notify(job_ids: Iterable[str]) -> None:
    """Wake the requests waiting on any of ``job_ids`` (call after the commit)."""
    for job_id in job_ids:
        for event in _waiters.get(job_id, ()):
            event.set()
