"""The scheduled chain check: a break is logged at ERROR and recorded in the trail itself."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec

from certctl.domain.audit.service import record
from certctl.domain.auth.actor import Actor

if TYPE_CHECKING:
    from certctl.runtime import Runtime

__all__ = ["VERIFIER", "verify_chain_and_report"]

VERIFIER = Actor.system("audit-chain-verify")
_log = logging.getLogger("certctl.audit")


async def verify_chain_and_report(runtime: Runtime) -> int:
    """Walk the chain; returns the rows found intact.

    The audit row of a break is appended after the head, so it does not hide the break (the
    walk still stops at the first broken link) and says when the break was first seen.
    """
    report = await runtime.audit_chain.verify()
    if report.ok:
        _log.info("audit chain intact: %d rows up to seq %d", report.checked, report.head_seq)
        return report.checked
    broken = report.first_broken
    assert broken is not None
    _log.error(
        "audit chain broken at seq %s (row %s): %s; %d rows intact before it, head at seq %d",
        broken.seq,
        broken.id,
        broken.reason,
        report.checked,
        report.head_seq,
    )
    async with runtime.sessions.begin() as session:
        record(
            session,
            VERIFIER,
            "audit.chain.broken",
            resource_type="audit_chain",
            resource_id="" if broken.seq is None else str(broken.seq),
            outcome="failure",
            category="audit",
            details=msgspec.to_builtins(report),
        )
    return report.checked
