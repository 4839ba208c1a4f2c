"""The durable notification queue through a real webhook notifier and a loopback receiver:
delivery, retries and dead-letter, requeue, exactly-once dispatch across dispatchers and
processes, lease reclaim, expiry alerts and the digest."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from certctl.db.base import new_id, utcnow
from certctl.db.models import ManagedCertificate, Notification
from certctl.domain.digest.service import send_digest
from certctl.domain.events import publish
from certctl.domain.notifications.expiry import crossed_threshold, scan_expiry_alerts
from certctl.domain.notifications.queue import (
    dispatch_notifications,
    enqueue,
    notification_values,
)
from certctl_sdk import EventType, LifecycleEvent
from certctl_sdk.testing.receiver import HttpReceiver, Reply

SECRET = "webhook-secret-for-notification-tests-0123"


@pytest.fixture
def receiver():
    with HttpReceiver() as r:
        yield r


@pytest.fixture
async def client(app_factory):
    # Retries are due at once so a test can drive them by calling the dispatcher.
    return await app_factory(notification_retry_base_seconds=0.0, notification_max_attempts=3)


async def _notifier(client, headers, receiver, name="ops"):
    r = await client.post(
        "/api/v1/notifiers",
        json={
            "name": name,
            "type": "webhook",
            "config": {
                "url": f"{receiver.base_url}/{name}",
                "secret": SECRET,
                "max_attempts": 1,
                "backoff_base": 0,
                "backoff_max": 0,
            },
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _event(job_id="job-1", type=EventType.CERTIFICATE_ISSUED):
    return LifecycleEvent(
        type=type,
        occurred_at=utcnow(),
        job_id=job_id,
        details={"common_name": "www.example.test"},
    )


async def _rows(runtime, **where):
    async with runtime.sessions() as session:
        query = select(Notification).order_by(Notification.created_at, Notification.id)
        for field, value in where.items():
            query = query.where(getattr(Notification, field) == value)
        return list(await session.scalars(query))


async def _queue(runtime, notifier_id, count):
    async with runtime.sessions.begin() as session:
        return await enqueue(
            session,
            [
                notification_values(
                    event="certificate.issued",
                    severity="info",
                    subject=f"n{i}",
                    body="body",
                    notifier_id=notifier_id,
                    dedup_key=f"test:{i}:{notifier_id}",
                    max_attempts=3,
                    occurred_at=utcnow(),
                )
                for i in range(count)
            ],
        )


async def test_publish_queues_and_delivers_once_with_the_row_id(client, admin_headers, receiver):
    notifier = await _notifier(client, admin_headers, receiver)
    await publish(client.runtime, _event())
    [row] = await _rows(client.runtime)
    assert (row.status, row.notifier_id, row.attempts) == ("sent", notifier, 1)
    assert [r.headers["x-certctl-delivery"] for r in receiver.requests] == [row.id]
    assert receiver.requests[0].json["event"] == "certificate.issued"
    # The same event published again (a retried publisher) is the same row: nothing is resent.
    await publish(client.runtime, _event())
    assert len(await _rows(client.runtime)) == 1
    assert len(receiver.requests) == 1
    audit = (
        await client.get(
            "/api/v1/audit", params={"action": "notification.sent"}, headers=admin_headers
        )
    ).json()["data"]
    assert [e["details"]["notification_id"] for e in audit] == [row.id]


async def test_disabled_notifiers_get_nothing(client, admin_headers, receiver):
    notifier = await _notifier(client, admin_headers, receiver)
    r = await client.put(
        f"/api/v1/notifiers/{notifier}", json={"enabled": False}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    await publish(client.runtime, _event())
    assert await _rows(client.runtime) == []
    assert receiver.requests == []


async def test_failures_retry_then_dead_letter_then_requeue_delivers(
    client, admin_headers, viewer_headers, receiver
):
    await _notifier(client, admin_headers, receiver)
    receiver.script = [Reply(status=500)] * 3
    await publish(client.runtime, _event())  # attempt 1
    [row] = await _rows(client.runtime)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "HTTP 500" in row.last_error
    assert await dispatch_notifications(client.runtime) == 1  # attempt 2
    assert await dispatch_notifications(client.runtime) == 1  # attempt 3: the last allowed
    [row] = await _rows(client.runtime)
    assert (row.status, row.attempts) == ("dead", 3)
    assert await dispatch_notifications(client.runtime) == 0
    assert len(receiver.requests) == 3
    assert {r.headers["x-certctl-delivery"] for r in receiver.requests} == {row.id}

    listed = (
        await client.get("/api/v1/notifications", params={"status": "dead"}, headers=admin_headers)
    ).json()
    assert [n["id"] for n in listed["data"]] == [row.id] and listed["total"] == 1
    r = await client.post(f"/api/v1/notifications/{row.id}/requeue", headers=viewer_headers)
    assert r.status_code == 403
    r = await client.post(f"/api/v1/notifications/{row.id}/requeue", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["attempts"]) == ("pending", 0)
    assert await dispatch_notifications(client.runtime) == 1
    sent = (await client.get(f"/api/v1/notifications/{row.id}", headers=admin_headers)).json()
    assert (sent["status"], sent["attempts"], sent["last_error"]) == ("sent", 1, None)
    assert len(receiver.requests) == 4
    r = await client.post(f"/api/v1/notifications/{row.id}/requeue", headers=admin_headers)
    assert r.status_code == 409
    assert "sent" in r.json()["detail"]
    actions = [
        e["action"]
        for e in (await client.get("/api/v1/audit", headers=admin_headers)).json()["data"]
    ]
    assert actions.count("notification.failed") == 3
    assert actions.count("notification.sent") == 1
    assert "notification.requeue" in actions


async def test_a_rejection_is_dead_at_once(client, admin_headers, receiver):
    await _notifier(client, admin_headers, receiver)
    receiver.script = [Reply(status=400, body=b"bad payload")]
    await publish(client.runtime, _event())
    [row] = await _rows(client.runtime)
    assert (row.status, row.attempts) == ("dead", 1)
    assert "HTTP 400" in row.last_error
    assert await dispatch_notifications(client.runtime) == 0
    assert len(receiver.requests) == 1


async def test_deleted_notifier_rows_go_dead_with_the_reason(client, admin_headers, receiver):
    notifier = await _notifier(client, admin_headers, receiver)
    await _queue(client.runtime, notifier, 1)
    r = await client.delete(f"/api/v1/notifiers/{notifier}", headers=admin_headers)
    assert r.status_code == 204, r.text
    assert await dispatch_notifications(client.runtime) == 1
    [row] = await _rows(client.runtime)
    assert (row.status, row.last_error) == ("dead", "the notifier was deleted")
    assert receiver.requests == []


async def test_concurrent_dispatchers_send_each_notification_once(
    app_factory, admin_headers, receiver
):
    # Few sends per dispatcher: the loopback receiver is a small threaded server, and what is
    # under test is that five dispatchers racing for the same rows never share one.
    client = await app_factory(notification_concurrency=2)
    notifier = await _notifier(client, admin_headers, receiver)
    ids = await _queue(client.runtime, notifier, 40)
    counts = await asyncio.gather(*(dispatch_notifications(client.runtime) for _ in range(5)))
    assert sum(counts) == 40
    delivered = [r.headers["x-certctl-delivery"] for r in receiver.requests]
    assert sorted(delivered) == sorted(ids)
    assert {r.status for r in await _rows(client.runtime)} == {"sent"}


async def test_two_processes_on_one_database_send_each_notification_once(
    app_factory, admin_headers, receiver
):
    first = await app_factory(notification_concurrency=2)
    second = await app_factory(notification_concurrency=2)
    assert first.runtime is not second.runtime
    notifier = await _notifier(first, admin_headers, receiver)
    ids = await _queue(first.runtime, notifier, 60)
    counts = await asyncio.gather(
        *(dispatch_notifications(rt) for rt in (first.runtime, second.runtime) for _ in range(3))
    )
    assert sum(counts) == 60
    delivered = [r.headers["x-certctl-delivery"] for r in receiver.requests]
    assert sorted(delivered) == sorted(ids)


async def test_an_expired_lease_is_reclaimed_and_a_live_one_is_not(client, admin_headers, receiver):
    notifier = await _notifier(client, admin_headers, receiver)
    crashed, busy = await _queue(client.runtime, notifier, 2)
    now = utcnow()
    async with client.runtime.sessions.begin() as session:
        for row_id, lease in (
            (crashed, now - timedelta(seconds=1)),
            (busy, now + timedelta(hours=1)),
        ):
            await session.execute(
                update(Notification)
                .where(Notification.id == row_id)
                .values(
                    status="sending", claimed_by="ntfd-gone", lease_expires_at=lease, attempts=1
                )
            )
    assert await dispatch_notifications(client.runtime) == 1
    assert [r.headers["x-certctl-delivery"] for r in receiver.requests] == [crashed]
    by_id = {r.id: r for r in await _rows(client.runtime)}
    assert (by_id[crashed].status, by_id[crashed].attempts) == ("sent", 2)
    assert (by_id[busy].status, by_id[busy].claimed_by) == ("sending", "ntfd-gone")


async def test_list_filters_paging_and_read(client, admin_headers, viewer_headers, receiver):
    a = await _notifier(client, admin_headers, receiver, "a")
    b = await _notifier(client, admin_headers, receiver, "b")
    await publish(client.runtime, _event("job-1"), _event("job-2", EventType.DEPLOYMENT_FAILED))
    page = (
        await client.get("/api/v1/notifications", params={"per_page": 3}, headers=viewer_headers)
    ).json()
    assert (page["total"], len(page["data"]), page["per_page"]) == (4, 3, 3)
    only_b = (
        await client.get("/api/v1/notifications", params={"notifier_id": b}, headers=admin_headers)
    ).json()
    assert {n["notifier_id"] for n in only_b["data"]} == {b} and only_b["total"] == 2
    failed = (
        await client.get(
            "/api/v1/notifications",
            params={"event": "deployment.failed", "notifier_id": a},
            headers=admin_headers,
        )
    ).json()["data"]
    assert len(failed) == 1 and failed[0]["severity"] == "critical"
    r = await client.get("/api/v1/notifications", params={"status": "bogus"}, headers=admin_headers)
    assert r.status_code == 400
    assert (
        await client.get("/api/v1/notifications/ntf-nope", headers=admin_headers)
    ).status_code == 404
    target = failed[0]["id"]
    r = await client.post(f"/api/v1/notifications/{target}/read", headers=admin_headers)
    assert r.status_code == 200 and r.json()["read_at"] is not None
    first_read = r.json()["read_at"]
    r = await client.post(f"/api/v1/notifications/{target}/read", headers=admin_headers)
    assert r.json()["read_at"] == first_read
    unread = (
        await client.get("/api/v1/notifications", params={"unread": "true"}, headers=admin_headers)
    ).json()
    assert unread["total"] == 3 and target not in [n["id"] for n in unread["data"]]


# --- expiry alerts -------------------------------------------------------------------------


async def _issuer(client, headers):
    r = await client.post(
        "/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _certificate(runtime, issuer, days_left, *, policy=None, status="active"):
    now = utcnow()
    cert = ManagedCertificate(
        id=new_id("mc"),
        name=f"cert-{days_left}",
        common_name=f"d{days_left}.example.test".replace("-", "m"),
        sans=[],
        key_type="ecdsa-p256",
        ekus=["serverAuth"],
        validity_seconds=90 * 86400,
        issuer_id=issuer,
        tags={},
        status=status,
        serial_number=new_id("serial"),
        expires_at=now + timedelta(days=days_left, hours=1),
        current_version_id=new_id("ver"),
        renewal_policy_id=policy,
        created_at=now,
        updated_at=now,
    )
    async with runtime.sessions.begin() as session:
        session.add(cert)
    return cert.id


def test_only_the_lowest_crossed_threshold_counts():
    thresholds = [30, 14, 7, 0]
    assert crossed_threshold(45, thresholds) is None
    assert crossed_threshold(30, thresholds) == 30
    assert crossed_threshold(5.5, thresholds) == 7
    assert crossed_threshold(0, thresholds) == 0
    assert crossed_threshold(-3, thresholds) == 0
    assert crossed_threshold(3, []) is None


async def test_expiry_alerts_once_per_threshold_and_version(client, admin_headers, receiver):
    notifier = await _notifier(client, admin_headers, receiver)
    issuer = await _issuer(client, admin_headers)
    rt = client.runtime
    ids = {d: await _certificate(rt, issuer, d) for d in (40, 20, 10, 5, -1)}
    await _certificate(rt, issuer, 3, status="revoked")
    assert await scan_expiry_alerts(rt) == 4
    assert await scan_expiry_alerts(rt) == 0  # another scan, or another replica: nothing new
    rows = {r.certificate_id: r for r in await _rows(rt, event="certificate.expiring")}
    assert {c: (rows[c].data["threshold_days"], rows[c].severity) for c in rows} == {
        ids[20]: (30, "info"),
        ids[10]: (14, "warning"),
        ids[5]: (7, "warning"),
        ids[-1]: (0, "critical"),
    }
    assert rows[ids[5]].dedup_key.startswith(f"expiry:{ids[5]}:") and rows[
        ids[5]
    ].dedup_key.endswith(f":7:{notifier}")
    assert "expires in 5 days" in rows[ids[5]].subject
    assert "has expired" in rows[ids[-1]].subject
    assert await dispatch_notifications(rt) == 4
    assert len(receiver.requests) == 4
    # Two days on, the 5-day certificate is still past the 7-day threshold: no repeat.
    async with rt.sessions.begin() as session:
        await session.execute(
            update(ManagedCertificate)
            .where(ManagedCertificate.id == ids[5])
            .values(expires_at=utcnow() + timedelta(days=3))
        )
    assert await scan_expiry_alerts(rt) == 0
    # Renewed (a new version) and again close to expiry: it alerts afresh.
    async with rt.sessions.begin() as session:
        await session.execute(
            update(ManagedCertificate)
            .where(ManagedCertificate.id == ids[5])
            .values(current_version_id=new_id("ver"))
        )
    assert await scan_expiry_alerts(rt) == 1


async def test_expiry_alerts_follow_the_policy_thresholds_and_notifiers(
    client, admin_headers, receiver
):
    ops = await _notifier(client, admin_headers, receiver, "ops")
    pager = await _notifier(client, admin_headers, receiver, "pager")
    issuer = await _issuer(client, admin_headers)
    r = await client.post(
        "/api/v1/renewal-policies",
        json={
            "name": "paging",
            "alert_thresholds_days": [3, 1],
            "alert_severity_map": {"3": "critical"},
            "alert_notifier_ids": [pager],
        },
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    policy = r.json()["id"]
    rt = client.runtime
    quiet = await _certificate(rt, issuer, 10, policy=policy)  # outside its 3-day threshold
    paged = await _certificate(rt, issuer, 2, policy=policy)
    default = await _certificate(rt, issuer, 10)
    assert await scan_expiry_alerts(rt) == 3  # paged → pager; default → ops and pager
    rows = await _rows(rt, event="certificate.expiring")
    assert {(r.certificate_id, r.notifier_id) for r in rows} == {
        (paged, pager),
        (default, ops),
        (default, pager),
    }
    assert quiet not in {r.certificate_id for r in rows}
    assert {r.severity for r in rows if r.certificate_id == paged} == {"critical"}


# --- digest --------------------------------------------------------------------------------


async def test_digest_preview_send_and_daily_once(
    app_factory, admin_headers, viewer_headers, receiver
):
    client = await app_factory(digest_enabled=True)
    await _notifier(client, admin_headers, receiver)
    issuer = await _issuer(client, admin_headers)
    for days in (2, 20, 200):
        await _certificate(client.runtime, issuer, days)
    preview = (await client.get("/api/v1/digest/preview", headers=viewer_headers)).json()
    assert preview["total_certificates"] == 3
    assert preview["certificates_by_status"] == {"active": 3}
    assert (preview["expiring_7d_count"], preview["expiring_30d_count"]) == (1, 2)
    assert [c["name"] for c in preview["expiring_30d"]] == ["cert-2", "cert-20"]
    assert "Expiring within 7 days: 1" in preview["body"]

    assert (await client.post("/api/v1/digest/send", headers=viewer_headers)).status_code == 403
    r = await client.post("/api/v1/digest/send", headers=admin_headers)
    assert r.status_code == 202, r.text
    sent = r.json()
    assert sent["created"] == 1
    # A double click (same minute) reports the same delivery and sends nothing more.
    again = (await client.post("/api/v1/digest/send", headers=admin_headers)).json()
    assert again == {"notification_ids": sent["notification_ids"], "created": 0}
    assert len(receiver.requests) == 1
    assert receiver.requests[0].json["event"] == "digest"

    # The daily digest is separate from the manual one, and goes out once a day.
    assert await send_digest(client.runtime) == 1
    assert await send_digest(client.runtime) == 0
    assert len(receiver.requests) == 2


async def test_digest_is_off_by_default_and_send_needs_a_recipient(client, admin_headers):
    assert await send_digest(client.runtime) == 0
    r = await client.post("/api/v1/digest/send", headers=admin_headers)
    assert r.status_code == 409
    assert "CERTCTL_DIGEST_NOTIFIER_IDS" in r.json()["detail"]
