"""Scale-out and crash safety: several real server processes on one PostgreSQL database.

* Three replicas, 500 certificates issued and then all due for renewal at once: every
  certificate is issued, renewed and deployed exactly once (the deploy command itself logs each
  serial it installs), every notification arrives once, and the work is shared.
* ``kill -9`` of the leader while it holds jobs: its jobs are reclaimed and finish, nothing is
  lost or duplicated, no certificate is signed twice, and the leader role moves.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from servers import Server, start_servers

from certctl_sdk.testing.receiver import HttpReceiver

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

CERTS = 500
TARGETS = 50


@pytest.fixture
def pg_url(database_url: str) -> str:
    """The test's fresh PostgreSQL database, as a plain ``postgresql://`` URL."""
    return "postgresql://" + database_url.split("://", 1)[1]


@pytest.fixture
def sync_db(pg_url: str) -> Callable[..., list[Any]]:
    """Run one SQL statement (``$1``-style parameters) and return its rows."""

    def query(statement: str, *params: Any) -> list[Any]:
        async def run() -> list[Any]:
            conn = await asyncpg.connect(pg_url)
            try:
                return [tuple(row) for row in await conn.fetch(statement, *params)]
            finally:
                await conn.close()

        return asyncio.run(run())

    return query


def _wait(condition: Callable[[], Any], what: str, timeout: float, replicas: list[Server]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    logs = "\n".join(f"--- replica {r.index}\n{r.tail()}" for r in replicas)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _setup(
    replica: Server, tmp_path: Path, *, certs: int, targets: int, validate: list[str]
) -> tuple[list[str], Path]:
    """A Local CA, ``targets`` file targets that log each deployed serial, ``certs`` certificates."""
    api = replica.client
    r = api.post("/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}})
    assert r.status_code == 201, r.text
    issuer = r.json()["id"]
    log = tmp_path / "deployed.log"
    target_ids = []
    for index in range(targets):
        directory = tmp_path / "targets" / str(index)
        directory.mkdir(parents=True)
        cert_path = directory / "cert.pem"
        r = api.post(
            "/api/v1/targets",
            json={
                "name": f"web-{index}",
                "type": "nginx",
                "config": {
                    "cert_path": str(cert_path),
                    "key_path": str(directory / "key.pem"),
                    "validate_command": validate,
                    "reload_command": [
                        "sh",
                        "-c",
                        f"openssl x509 -noout -serial -in {cert_path} >> {log}",
                    ],
                },
            },
        )
        assert r.status_code == 201, r.text
        target_ids.append(r.json()["id"])
    ids: list[str] = []
    for start in range(0, certs, 250):
        r = api.post(
            "/api/v1/certificates/bulk",
            json={
                "certificates": [
                    {
                        "common_name": f"h{i}.scale.test",
                        "issuer_id": issuer,
                        "target_ids": [target_ids[i % targets]],
                    }
                    for i in range(start, min(certs, start + 250))
                ]
            },
        )
        assert r.status_code == 202, r.text
        ids += [item["certificate"]["id"] for item in r.json()]
    return ids, log


def _deployed_serials(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [
        line.split("=", 1)[1].strip().lower().lstrip("0")
        for line in log.read_text().splitlines()
        if line.startswith("serial=")
    ]


def test_three_replicas_renew_and_deploy_each_certificate_exactly_once(pg_url, sync_db, tmp_path):
    with HttpReceiver() as receiver:
        replicas = start_servers(3, pg_url, tmp_path, CERTCTL_SCHEDULER_RENEWAL_CHECK_INTERVAL="1")
        try:
            api = replicas[0].client
            r = api.post(
                "/api/v1/notifiers",
                json={
                    "name": "ops",
                    "type": "webhook",
                    "config": {"url": receiver.base_url, "secret": "scale-out-hmac-0123456789"},
                },
            )
            assert r.status_code == 201, r.text
            ids, log = _setup(
                replicas[0], tmp_path, certs=CERTS, targets=TARGETS, validate=["true"]
            )
            assert len(ids) == CERTS

            def deployments_done(expected: int) -> bool:
                (done,) = sync_db(
                    "SELECT count(*) FROM jobs WHERE type = 'deployment' AND status = 'completed'"
                )[0]
                return bool(done >= expected)

            _wait(lambda: deployments_done(CERTS), "first deployments", 240, replicas)
            sync_db("UPDATE managed_certificates SET renew_at = now()")
            _wait(lambda: deployments_done(2 * CERTS), "renewal deployments", 240, replicas)

            versions = sync_db(
                "SELECT certificate_id, count(*), count(DISTINCT serial_number) "
                "FROM certificate_versions GROUP BY certificate_id"
            )
            assert len(versions) == CERTS
            assert all(n == 2 and distinct == 2 for _, n, distinct in versions)
            jobs = sync_db("SELECT type, status, count(*) FROM jobs GROUP BY type, status")
            assert sorted(jobs) == sorted(
                [
                    ("issuance", "completed", CERTS),
                    ("renewal", "completed", CERTS),
                    ("deployment", "completed", 2 * CERTS),
                ]
            )
            deployments = sync_db(
                "SELECT version_id, target_id, count(*) FROM deployments "
                "WHERE status = 'succeeded' GROUP BY version_id, target_id"
            )
            assert len(deployments) == 2 * CERTS and all(n == 1 for *_, n in deployments)
            # The external side effect: each serial was installed by exactly one reload.
            installed = collections.Counter(_deployed_serials(log))
            stored = {
                s.lower().lstrip("0")
                for (s,) in sync_db("SELECT serial_number FROM certificate_versions")
            }
            assert set(installed) == stored and set(installed.values()) == {1}
            # The work was shared: more than one replica's workers ran issuances.
            workers = sync_db("SELECT count(DISTINCT claimed_by) FROM jobs")[0][0]
            assert workers >= 2
            leaders = {r.client.get("/api/v1/scheduler").json()["leader"]["id"] for r in replicas}
            assert len(leaders) == 1

            def notified() -> collections.Counter[tuple[str, str]]:
                counts: collections.Counter[tuple[str, str]] = collections.Counter()
                for request in list(receiver.requests):
                    body = request.json
                    counts[(str(body.get("event")), str(body.get("certificate_id")))] += 1
                return counts

            def all_notified() -> bool:
                # Every certificate's issued and renewed events, not a count of events: deployed
                # events count too, so a sum is reached before the last renewals are delivered.
                seen = notified()
                return all(
                    {c for (e, c) in seen if e == event} >= set(ids)
                    for event in ("certificate.issued", "certificate.renewed")
                )

            _wait(all_notified, "notifications", 120, replicas)
            counts = notified()
            for event in ("certificate.issued", "certificate.renewed"):
                per_cert = {c: n for (e, c), n in counts.items() if e == event}
                assert set(per_cert) == set(ids), event
                assert set(per_cert.values()) == {1}, f"{event} delivered more than once"
        finally:
            for replica in replicas:
                replica.stop()


def test_kill_9_of_the_leader_loses_and_duplicates_nothing(pg_url, sync_db, tmp_path):
    replicas = start_servers(
        3,
        pg_url,
        tmp_path,
        CERTCTL_JOB_LEASE_TIMEOUT="4",
        CERTCTL_WORKER_CONCURRENCY="4",
    )
    try:
        ids, log = _setup(
            replicas[0], tmp_path, certs=120, targets=30, validate=["sh", "-c", "sleep 1"]
        )
        status = replicas[0].client.get("/api/v1/scheduler").json()
        leader_id = status["leader"]["id"]
        leader = next(r for r in replicas if r.pid == status["leader"]["pid"])
        prefix = leader_id.rsplit(":", 1)[0] + ":"  # host:pid, shared with its worker id

        def running_on_leader() -> list[Any]:
            return sync_db(
                "SELECT id FROM jobs WHERE status = 'running' AND type = 'deployment' "
                "AND claimed_by LIKE $1",
                prefix + "%",
            )

        _wait(running_on_leader, "the leader to hold running deployments", 120, replicas)
        leader.kill()
        # Read after the process is gone: a job that finished between the poll and the kill
        # was not orphaned and proves nothing about reclaiming.
        held_ids = {row[0] for row in running_on_leader()}
        assert held_ids, "the leader finished every deployment before it was killed"
        survivors = [r for r in replicas if r is not leader]

        def new_leader() -> str | None:
            body = survivors[0].client.get("/api/v1/scheduler").json()
            lead = body["leader"]
            return lead["id"] if lead and lead["id"] != leader_id else None

        moved = _wait(new_leader, "the leader role to move", 30, survivors)
        assert moved in {
            rep["id"] for rep in survivors[1].client.get("/api/v1/scheduler").json()["replicas"]
        }

        def all_done() -> bool:
            rows = sync_db(
                "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FROM jobs"
            )[0]
            return bool(rows[0] == rows[1] == 120 + 120)

        _wait(all_done, "every job to complete after the kill", 180, survivors)
        # The dead leader's jobs were finished by the survivors.
        finishers = sync_db("SELECT claimed_by FROM jobs WHERE id = ANY($1)", list(held_ids))
        assert finishers and all(not c.startswith(prefix) for (c,) in finishers)
        # Nothing duplicated: one version per certificate, one successful deployment each.
        versions = sync_db(
            "SELECT certificate_id, count(*) FROM certificate_versions GROUP BY certificate_id"
        )
        assert len(versions) == len(ids) and all(n == 1 for _, n in versions)
        deployments = sync_db(
            "SELECT version_id, count(*) FROM deployments WHERE status = 'succeeded' "
            "GROUP BY version_id"
        )
        assert len(deployments) == len(ids) and all(n == 1 for _, n in deployments)
        states = sync_db("SELECT status, count(*) FROM managed_certificates GROUP BY status")
        assert states == [("active", len(ids))]
        # The only certificates ever installed are the stored ones: a deployment interrupted by
        # the kill may be re-run, but never with a second certificate.
        stored = {
            s.lower().lstrip("0")
            for (s,) in sync_db("SELECT serial_number FROM certificate_versions")
        }
        assert set(_deployed_serials(log)) == stored
    finally:
        for replica in replicas:
            replica.stop()
