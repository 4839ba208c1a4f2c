"""Jobs over REST: list, filter, inspect and cancel the issuance job of a new certificate."""

import pytest


@pytest.fixture
async def issuer_id(client, admin_headers):
    r = await client.post(
        "/api/v1/issuers",
        json={"name": "local-ca", "type": "local", "config": {}},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def new_certificate(client, headers, issuer_id, name):
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": f"{name}.example.test", "issuer_id": issuer_id},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    return r.json()


async def test_certificate_creation_enqueues_a_pending_job(
    client, admin_headers, viewer_headers, issuer_id
):
    accepted = await new_certificate(client, admin_headers, issuer_id, "www")
    job = accepted["job"]
    assert job["status"] == "pending"
    assert job["certificate_id"] == accepted["certificate"]["id"]
    assert job["attempts"] == 0
    assert job["requested_by"] == "admin"

    r = await client.get(f"/api/v1/jobs/{job['id']}", headers=viewer_headers)
    assert r.status_code == 200
    assert r.json() == job

    body = (await client.get("/api/v1/jobs", headers=viewer_headers)).json()
    assert body["total"] == 1
    assert body["data"] == [job]


async def test_list_filters_and_paging(client, admin_headers, issuer_id):
    certs = [await new_certificate(client, admin_headers, issuer_id, n) for n in ("a", "b", "c")]
    jobs = [c["job"] for c in certs]

    async def listed(**params):
        r = await client.get("/api/v1/jobs", params=params, headers=admin_headers)
        assert r.status_code == 200, r.text
        return r.json()

    everything = await listed()
    assert everything["total"] == 3
    assert [j["id"] for j in everything["data"]] == [
        j["id"] for j in reversed(jobs)
    ]  # newest first

    one = await listed(certificate_id=certs[1]["certificate"]["id"])
    assert [j["id"] for j in one["data"]] == [jobs[1]["id"]]
    assert (await listed(certificate_id="mc-nope"))["total"] == 0

    r = await client.post(f"/api/v1/jobs/{jobs[0]['id']}/cancel", headers=admin_headers)
    assert r.status_code == 200
    assert [j["id"] for j in (await listed(status="cancelled"))["data"]] == [jobs[0]["id"]]
    assert (await listed(status="pending"))["total"] == 2
    assert (await listed(status="running"))["total"] == 0
    assert (await listed(type=jobs[0]["type"]))["total"] == 3
    assert (await listed(type="deploy"))["total"] == 0
    assert (await listed(type=jobs[0]["type"], status="pending"))["total"] == 2

    page = await listed(per_page=2, page=2)
    assert [j["id"] for j in page["data"]] == [jobs[0]["id"]]
    assert (page["total"], page["page"], page["per_page"]) == (3, 2, 2)
    r = await client.get("/api/v1/jobs", params={"per_page": 0}, headers=admin_headers)
    assert r.status_code == 400


async def test_cancel_then_cancel_again(client, admin_headers, issuer_id):
    job = (await new_certificate(client, admin_headers, issuer_id, "www"))["job"]

    r = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=admin_headers)
    assert r.status_code == 200, r.text
    cancelled = r.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["completed_at"] is not None
    r = await client.get(f"/api/v1/jobs/{job['id']}", headers=admin_headers)
    assert r.json()["status"] == "cancelled"

    r = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=admin_headers)
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "cancelled" in r.json()["detail"]

    events = (
        await client.get("/api/v1/audit", params={"resource_id": job["id"]}, headers=admin_headers)
    ).json()["data"]
    assert [(e["action"], e["actor"], e["outcome"]) for e in events] == [
        ("job.cancel", "admin", "success")
    ]

    # A cancelled job is never run.
    await client.runtime.worker.drain()
    r = await client.get(f"/api/v1/jobs/{job['id']}", headers=admin_headers)
    assert r.json()["status"] == "cancelled"
    assert r.json()["attempts"] == 0


async def test_finished_job_cannot_be_cancelled(client, admin_headers, issuer_id):
    job = (await new_certificate(client, admin_headers, issuer_id, "www"))["job"]
    await client.runtime.worker.drain()
    done = (await client.get(f"/api/v1/jobs/{job['id']}", headers=admin_headers)).json()
    assert done["status"] not in ("pending", "running")
    r = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=admin_headers)
    assert r.status_code == 409
    assert (await client.get(f"/api/v1/jobs/{job['id']}", headers=admin_headers)).json() == done


async def test_unknown_job_is_404(client, admin_headers):
    r = await client.get("/api/v1/jobs/job-0000000000000000", headers=admin_headers)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.post("/api/v1/jobs/job-0000000000000000/cancel", headers=admin_headers)
    assert r.status_code == 404


async def test_viewer_cannot_cancel(client, admin_headers, viewer_headers, issuer_id):
    job = (await new_certificate(client, admin_headers, issuer_id, "www"))["job"]
    r = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=viewer_headers)
    assert r.status_code == 403
    assert "job.cancel" in r.json()["detail"]
    r = await client.get(f"/api/v1/jobs/{job['id']}", headers=viewer_headers)
    assert r.json()["status"] == "pending"
