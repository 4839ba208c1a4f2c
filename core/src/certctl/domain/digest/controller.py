"""``/api/v1/digest``: preview the digest, or send it now."""

from __future__ import annotations

from litestar import Controller, get, post

from certctl.db.base import utcnow
from certctl.domain.audit.service import record
from certctl.domain.digest.schemas import Digest, DigestSent
from certctl.domain.digest.service import build_digest, queue_digest
from certctl.errors import Conflict
from certctl.lib.deps import ActorDep, RuntimeDep, SessionDep

__all__ = ["DigestController"]


class DigestController(Controller):
    """The certificate digest."""

    path = "/api/v1/digest"
    tags = ["Digest"]

    @get("/preview", opt={"permission": "digest.read"})
    async def preview(self, session: SessionDep) -> Digest:
        """The digest as it would be sent now."""
        return await build_digest(session)

    @post("/send", opt={"permission": "digest.send"}, status_code=202)
    async def send(self, runtime: RuntimeDep, session: SessionDep, actor: ActorDep) -> DigestSent:
        """Send the digest now to the digest notifiers, whether or not the daily one went out.

        The key ``digest:<day>:manual-<HHMM>`` is separate from the daily one, and repeated
        requests within the same UTC minute (a double click) return the first send's rows.
        """
        ids, created = await queue_digest(runtime, f"{utcnow():%Y-%m-%d}:manual-{utcnow():%H%M}")
        if not ids:
            raise Conflict("no enabled notifier receives the digest (CERTCTL_DIGEST_NOTIFIER_IDS)")
        record(
            session,
            actor,
            "digest.send",
            resource_type="digest",
            resource_id=ids[0],
            details={"notification_ids": ids, "created": created},
        )
        await session.commit()
        return DigestSent(notification_ids=ids, created=created)
