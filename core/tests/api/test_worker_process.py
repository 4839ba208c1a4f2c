"""`certctl worker` runs jobs from another process sharing the database (scale-out shape)."""

import asyncio
import os
import signal
import subprocess
import sys


async def test_worker_process_issues_queued_certificates(app_factory, admin_headers, tmp_path):
    client = await app_factory()  # no in-process worker
    settings = client.runtime.settings
    issuer = (
        await client.post(
            "/api/v1/issuers",
            json={"name": "ca", "type": "local", "config": {}},
            headers=admin_headers,
        )
    ).json()["id"]
    r = await client.post(
        "/api/v1/certificates/bulk",
        json={
            "certificates": [
                {"common_name": f"p{i}.worker.test", "issuer_id": issuer} for i in range(5)
            ]
        },
        headers=admin_headers,
    )
    assert r.status_code == 202
    env = dict(
        os.environ,
        CERTCTL_DATABASE_URL=settings.effective_database_url,
        CERTCTL_DATA_DIR=str(tmp_path / "worker"),
        CERTCTL_CONFIG_ENCRYPTION_KEY=settings.config_encryption_key,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "certctl", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(300):
            listed = (
                await client.get(
                    "/api/v1/certificates", params={"status": "active"}, headers=admin_headers
                )
            ).json()
            if listed["total"] == 5 or proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert listed["total"] == 5, (
            proc.stderr.read().decode()[-2000:] if proc.poll() is not None else listed
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"certctl worker" in out
    jobs = (
        await client.get("/api/v1/jobs", params={"type": "issuance"}, headers=admin_headers)
    ).json()
    assert {j["status"] for j in jobs["data"]} == {"completed"}
    assert all(j["attempts"] == 1 for j in jobs["data"])
