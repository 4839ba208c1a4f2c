"""Revocation withdraws certificates from targets only when the operator asks."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from certctl.db.models import Deployment, Job
from certctl.plugins.manager import load_plugins
from certctl_sdk import hookimpl
from certctl_sdk.testing.fakes import MemoryTarget


class _Plugin:
    @hookimpl
    def register_targets(self):
        return [MemoryTarget]


@pytest.fixture
async def api(app_factory):
    return await app_factory(host=load_plugins(extra_plugins=[_Plugin()]))


async def _deployed(api, headers, *, kinds: list[str], count: int = 1):
    issuer = (
        await api.post(
            "/api/v1/issuers", json={"name": "ca", "type": "local", "config": {}}, headers=headers
        )
    ).json()["id"]
    targets = []
    for index, kind in enumerate(kinds):
        config = (
            {"name": f"m{index}"}
            if kind == "memory"
            else {"cert_path": f"/tmp/never-{index}/c.pem", "key_path": f"/tmp/never-{index}/k.pem"}
        )
        r = await api.post(
            "/api/v1/targets",
            json={"name": f"t{index}", "type": kind, "config": config},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        targets.append(r.json()["id"])
    ids = []
    for i in range(count):
        r = await api.post(
            "/api/v1/certificates",
            json={
                "common_name": f"w{i}.withdraw.test",
                "issuer_id": issuer,
                "target_ids": [t for t, k in zip(targets, kinds, strict=True) if k == "memory"],
            },
            headers=headers,
        )
        ids.append(r.json()["certificate"]["id"])
    await api.runtime.worker.drain()
    return ids, targets


def _memory(api, target_id: str) -> MemoryTarget:
    from certctl.db.models import ConnectorInstance

    async def get():
        async with api.runtime.sessions() as session:
            return api.runtime.connectors.instance(await session.get(ConnectorInstance, target_id))

    return get


async def test_plain_revocation_leaves_targets_alone(api, admin_headers):
    [cert], [target] = await _deployed(api, admin_headers, kinds=["memory"])
    r = await api.post(
        f"/api/v1/certificates/{cert}/revoke", json={"reason": "superseded"}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    await api.runtime.worker.drain()
    memory = await _memory(api, target)()
    assert cert in memory.deployed
    async with api.runtime.sessions() as session:
        assert await session.scalar(sa.select(sa.func.count()).where(Job.type == "removal")) == 0


async def test_withdrawal_removes_from_capable_targets(api, admin_headers):
    certs, [target] = await _deployed(api, admin_headers, kinds=["memory"], count=2)
    r = await api.post(
        "/api/v1/certificates/bulk-revoke",
        json={"certificate_ids": certs, "reason": "keyCompromise", "withdraw_from_targets": True},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    await api.runtime.worker.drain()
    memory = await _memory(api, target)()
    assert not (set(certs) & set(memory.deployed))
    async with api.runtime.sessions() as session:
        removals = list(await session.scalars(sa.select(Job).where(Job.type == "removal")))
        rows = list(
            await session.scalars(sa.select(Deployment).where(Deployment.status == "removed"))
        )
    assert sorted(j.certificate_id for j in removals) == sorted(certs)
    assert {j.status for j in removals} == {"completed"}
    assert sorted(d.certificate_id for d in rows) == sorted(certs)


async def test_targets_that_cannot_withdraw_fail_with_the_reason(api, admin_headers):
    [cert], [memory_target, nginx_target] = await _deployed(
        api, admin_headers, kinds=["memory", "nginx"]
    )
    r = await api.put(
        f"/api/v1/certificates/{cert}",
        json={"target_ids": [memory_target, nginx_target]},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    r = await api.post(
        f"/api/v1/certificates/{cert}/revoke",
        json={"reason": "cessationOfOperation", "withdraw_from_targets": True},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    await api.runtime.worker.drain()
    async with api.runtime.sessions() as session:
        removals = {
            j.target_id: j
            for j in await session.scalars(sa.select(Job).where(Job.type == "removal"))
        }
    assert removals[memory_target].status == "completed"
    failed = removals[nginx_target]
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.last_error == "nginx targets cannot withdraw certificates"
