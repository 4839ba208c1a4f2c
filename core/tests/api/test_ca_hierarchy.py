"""The CA hierarchy of a Local CA issuer: RFC 5280 rules, full path validation, retirement."""

import subprocess
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.verification import PolicyBuilder, Store

from certctl.domain.ocsp.service import responder_service


async def _issuer(client, headers, name="tree"):
    r = await client.post(
        "/api/v1/issuers", json={"name": name, "type": "local", "config": {}}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def _create(client, headers, issuer, name, *, status=201, **body):
    body = {"name": name, "subject": {"common_name": name}, **body}
    r = await client.post(f"/api/v1/issuers/{issuer}/intermediates", json=body, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


async def _choose(client, headers, issuer, ca_id, status=200):
    r = await client.put(
        f"/api/v1/issuers/{issuer}/issuing-ca", json={"ca_id": ca_id}, headers=headers
    )
    assert r.status_code == status, r.text
    return r.json()


async def _retire(client, headers, ca_id, *, confirm, status=200):
    r = await client.post(
        f"/api/v1/intermediates/{ca_id}/retire",
        json={"note": "rotation", "confirm": confirm},
        headers=headers,
    )
    assert r.status_code == status, r.text
    return r.json()


async def _order(client, headers, issuer, cn):
    r = await client.post(
        "/api/v1/certificates",
        json={"common_name": cn, "issuer_id": issuer, "validity_days": 10},
        headers=headers,
    )
    assert r.status_code == 202, r.text
    cert_id = r.json()["certificate"]["id"]
    await client.runtime.worker.drain()
    return (await client.get(f"/api/v1/certificates/{cert_id}", headers=headers)).json()


async def _issued(client, headers, issuer, cn):
    cert = await _order(client, headers, issuer, cn)
    assert cert["status"] == "active", cert
    pem = (
        await client.get(f"/api/v1/certificates/{cert['id']}/export/pem", headers=headers)
    ).json()
    leaf = x509.load_pem_x509_certificate(pem["certificate_pem"].encode())
    chain = x509.load_pem_x509_certificates(pem["chain_pem"].encode())
    return cert["id"], leaf, chain


def _cert(row):
    return x509.load_pem_x509_certificate(row["certificate_pem"].encode())


def _ext(cert, kind):
    return cert.extensions.get_extension_for_class(kind)


def _pem(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _validate(leaf, chain, name, tmp_path):
    """Full RFC 5280 path validation, by cryptography's verifier and by ``openssl verify``."""
    *intermediates, root = chain
    assert root.subject == root.issuer  # the chain ends with the self-signed root
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(name))
    built = verifier.verify(leaf, intermediates)
    assert built == [leaf, *chain]
    (tmp_path / "root.pem").write_bytes(_pem(root))
    (tmp_path / "untrusted.pem").write_bytes(_pem(*intermediates))
    (tmp_path / "leaf.pem").write_bytes(_pem(leaf))
    args = ["openssl", "verify", "-x509_strict", "-CAfile", str(tmp_path / "root.pem")]
    args += ["-untrusted", str(tmp_path / "untrusted.pem"), str(tmp_path / "leaf.pem")]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_three_level_tree_issues_chains_that_validate(client, admin_headers, tmp_path):
    issuer = await _issuer(client, admin_headers)
    policy = await _create(
        client,
        admin_headers,
        issuer,
        "Policy CA",
        algorithm="RSA-3072",
        path_len_constraint=1,
        subject={
            "common_name": "Policy CA",
            "organization": ["Example"],
            "organizational_unit": ["PKI"],
            "country": ["DE"],
            "locality": ["Berlin"],
            "province": ["Berlin"],
        },
        ocsp_responder_url="http://ocsp.example.test/root",
        metadata={"owner": "pki-team"},
    )
    assert policy["parent_ca_id"] is None
    assert policy["state"] == "active" and policy["issuing"] is False
    assert policy["subject"] == "CN=Policy CA,OU=PKI,O=Example,L=Berlin,ST=Berlin,C=DE"
    issuing = await _create(
        client,
        admin_headers,
        issuer,
        "Issuing CA",
        parent_ca_id=policy["id"],
        algorithm="ECDSA-P384",
    )
    assert issuing["parent_ca_id"] == policy["id"]
    assert issuing["path_len_constraint"] == 0  # one below the parent's by default

    policy_cert, issuing_cert = _cert(policy), _cert(issuing)
    for cert, path_len in ((policy_cert, 1), (issuing_cert, 0)):
        basic = _ext(cert, x509.BasicConstraints)
        assert basic.critical and basic.value.ca and basic.value.path_length == path_len
        usage = _ext(cert, x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
        assert not usage.value.digital_signature
    assert (
        _ext(issuing_cert, x509.AuthorityKeyIdentifier).value.key_identifier
        == _ext(policy_cert, x509.SubjectKeyIdentifier).value.digest
    )
    aia = _ext(policy_cert, x509.AuthorityInformationAccess).value
    assert [a.access_location.value for a in aia] == ["http://ocsp.example.test/root"]

    # Until a tree CA is chosen the issuer signs with its root; then with the issuing CA.
    _, leaf, chain = await _issued(client, admin_headers, issuer, "before.example.test")
    [root] = chain
    assert policy_cert.issuer == root.subject
    assert (await _choose(client, admin_headers, issuer, issuing["id"]))["issuing"] is True
    _, leaf, chain = await _issued(client, admin_headers, issuer, "leaf.example.test")
    assert chain == [issuing_cert, policy_cert, root]
    assert _ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == (
        _ext(issuing_cert, x509.SubjectKeyIdentifier).value.digest
    )
    _validate(leaf, chain, "leaf.example.test", tmp_path)

    # The AIA caIssuers endpoint serves the issuing CA now.
    r = await client.get(f"/.well-known/pki/ca/{issuer}")
    assert r.content == issuing_cert.public_bytes(serialization.Encoding.DER)

    listed = await client.get(f"/api/v1/issuers/{issuer}/intermediates", headers=admin_headers)
    assert [row["id"] for row in listed.json()] == [policy["id"], issuing["id"]]
    one = (await client.get(f"/api/v1/intermediates/{policy['id']}", headers=admin_headers)).json()
    assert one["metadata"] == {"owner": "pki-team"} and "private_key" not in str(one)

    # Back to the root: leaves chain to it directly again.
    assert await _choose(client, admin_headers, issuer, None) is None
    _, leaf, chain = await _issued(client, admin_headers, issuer, "after.example.test")
    assert chain == [root]


async def test_rfc5280_rules_are_enforced_at_creation(client, admin_headers, tmp_path):
    issuer = await _issuer(client, admin_headers)
    top = await _create(
        client,
        admin_headers,
        issuer,
        "Top",
        path_len_constraint=2,
        name_constraints={"permitted_dns": ["example.test"], "excluded_dns": ["bad.example.test"]},
    )
    top_cert = _cert(top)
    constraints = _ext(top_cert, x509.NameConstraints)
    assert constraints.critical
    assert constraints.value.permitted_subtrees == [x509.DNSName("example.test")]
    assert constraints.value.excluded_subtrees == [x509.DNSName("bad.example.test")]

    async def refused(fragment, status=400, **body):
        body = {"parent_ca_id": top["id"], **body}
        problem = await _create(client, admin_headers, issuer, "Child", status=status, **body)
        assert fragment in str(problem), problem

    await refused("below the parent CA's (2)", path_len_constraint=2)
    await refused(
        "outside the parent CA's permitted", name_constraints={"permitted_dns": ["x.org"]}
    )
    await refused("must not be empty", name_constraints={"excluded_dns": ["bad.example.test"]})
    await refused(
        "must include the parent CA's excluded subtree bad.example.test",
        name_constraints={"permitted_dns": ["shop.example.test"]},
    )
    await refused("not a DNS name", name_constraints={"permitted_dns": ["*.example.test"]})
    await refused("is not a CA of issuer", parent_ca_id="ica-missing")
    await refused("algorithm", algorithm="DSA-1024")

    # Narrower subtrees are fine; omitted constraints repeat the parent's.
    narrow = await _create(
        client,
        admin_headers,
        issuer,
        "Shop",
        parent_ca_id=top["id"],
        path_len_constraint=0,
        name_constraints={
            "permitted_dns": ["shop.example.test"],
            "excluded_dns": ["bad.example.test", "old.shop.example.test"],
        },
        ttl_days=36500,
    )
    # notAfter is clipped to the parent's, never beyond.
    assert _cert(narrow).not_valid_after_utc == top_cert.not_valid_after_utc
    inherited = await _create(client, admin_headers, issuer, "Inherit", parent_ca_id=top["id"])
    assert inherited["path_len_constraint"] == 1
    assert inherited["name_constraints"] == {
        "permitted_dns": ["example.test"],
        "excluded_dns": ["bad.example.test"],
    }
    # A parent with pathLenConstraint 0 cannot have CA children.
    problem = await _create(
        client, admin_headers, issuer, "Deeper", status=400, parent_ca_id=narrow["id"]
    )
    assert "pathLenConstraint 0" in problem["detail"]

    # A leaf inside the narrowed subtree validates against the whole constrained path.
    await _choose(client, admin_headers, issuer, narrow["id"])
    _, leaf, chain = await _issued(client, admin_headers, issuer, "www.shop.example.test")
    assert len(chain) == 3
    _validate(leaf, chain, "www.shop.example.test", tmp_path)

    # Names the constrained chain may not certify are refused instead of signed.
    for name, why in (
        ("www.example.org", "outside the name constraints"),
        ("a.old.shop.example.test", "excluded by the name constraints"),
    ):
        refused = await _order(client, admin_headers, issuer, name)
        assert refused["status"] != "active", refused
        jobs = await client.get(
            "/api/v1/jobs", params={"certificate_id": refused["id"]}, headers=admin_headers
        )
        assert why in jobs.text, jobs.text


async def test_only_admins_manage_the_tree(client, admin_headers, viewer_headers):
    issuer = await _issuer(client, admin_headers)
    operator = viewer_headers  # holds issuer.read, not ca.hierarchy.manage
    r = await client.post(
        f"/api/v1/issuers/{issuer}/intermediates",
        json={"name": "x", "subject": {"common_name": "x"}},
        headers=operator,
    )
    assert r.status_code == 403
    r = await client.get(f"/api/v1/issuers/{issuer}/intermediates", headers=operator)
    assert r.status_code == 200 and r.json() == []
    schema = await client.get("/schema/openapi.json", headers=admin_headers)
    assert schema.status_code == 200
    assert "/api/v1/intermediates/{ca_id}/retire" in schema.json()["paths"]


async def test_retirement_drains_first_and_keeps_crl_and_ocsp(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    parent = await _create(client, admin_headers, issuer, "Parent")
    child = await _create(client, admin_headers, issuer, "Child", parent_ca_id=parent["id"])
    child_cert = _cert(child)
    await _choose(client, admin_headers, issuer, child["id"])
    old_id, old_leaf, _ = await _issued(client, admin_headers, issuer, "old.example.test")
    _, kept_leaf, _ = await _issued(client, admin_headers, issuer, "kept.example.test")

    # Finishing without draining first, and retiring twice, are refused.
    problem = await _retire(client, admin_headers, child["id"], confirm=True, status=409)
    assert "confirm: false first" in problem["detail"]
    retiring = await _retire(client, admin_headers, child["id"], confirm=False)
    assert retiring["state"] == "retiring" and retiring["retire_note"] == "rotation"
    await _retire(client, admin_headers, child["id"], confirm=False, status=409)

    # Retiring issues nothing new ...
    refused = await _order(client, admin_headers, issuer, "new.example.test")
    assert refused["status"] != "active", refused
    jobs = await client.get(
        "/api/v1/jobs", params={"certificate_id": refused["id"]}, headers=admin_headers
    )
    assert "retiring" in str(jobs.json()), jobs.text

    # ... but revocations still reach its CRL and OCSP, signed under the retiring CA.
    r = await client.post(
        f"/api/v1/certificates/{old_id}/revoke",
        json={"reason": "superseded"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    crl = x509.load_der_x509_crl((await client.get(f"/.well-known/pki/crl/{issuer}")).content)
    assert crl.issuer == child_cert.subject
    assert crl.is_signature_valid(child_cert.public_key())
    assert crl.get_revoked_certificate_by_serial_number(old_leaf.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(kept_leaf.serial_number) is None
    await responder_service(client.runtime).refresh_all()
    for leaf, status in (
        (old_leaf, ocsp.OCSPCertStatus.REVOKED),
        (kept_leaf, ocsp.OCSPCertStatus.GOOD),
    ):
        request = ocsp.OCSPRequestBuilder().add_certificate(leaf, child_cert, hashes.SHA256())
        der = request.build().public_bytes(serialization.Encoding.DER)
        r = await client.post(
            f"/.well-known/pki/ocsp/{issuer}",
            content=der,
            headers={"Content-Type": "application/ocsp-request"},
        )
        answer = ocsp.load_der_ocsp_response(r.content)
        assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert answer.certificate_status == status
        [responder] = answer.certificates
        responder.verify_directly_issued_by(child_cert)
        assert answer.next_update_utc - answer.this_update_utc == timedelta(hours=1)

    # A retiring parent takes no new children; retired waits for the children and the choice.
    await _retire(client, admin_headers, parent["id"], confirm=False)
    problem = await _create(
        client, admin_headers, issuer, "Late", status=409, parent_ca_id=parent["id"]
    )
    assert "retiring" in problem["detail"]
    problem = await _retire(client, admin_headers, parent["id"], confirm=True, status=409)
    assert child["id"] in problem["detail"]
    problem = await _retire(client, admin_headers, child["id"], confirm=True, status=409)
    assert "choose another issuing CA" in problem["detail"]
    await _choose(client, admin_headers, issuer, child["id"], status=409)  # not active
    await _choose(client, admin_headers, issuer, None)
    assert (await _retire(client, admin_headers, child["id"], confirm=True))["state"] == "retired"
    assert (await _retire(client, admin_headers, parent["id"], confirm=True))["state"] == "retired"
    await _retire(client, admin_headers, parent["id"], confirm=True, status=409)


async def test_issuers_without_subordinate_signing_are_refused(client, admin_headers):
    r = await client.post(
        "/api/v1/issuers/iss-missing/intermediates",
        json={"name": "x", "subject": {"common_name": "x"}},
        headers=admin_headers,
    )
    assert r.status_code == 404
    r = await client.get("/api/v1/intermediates/ica-missing", headers=admin_headers)
    assert r.status_code == 404


async def test_deleting_the_issuer_removes_its_tree(client, admin_headers):
    issuer = await _issuer(client, admin_headers)
    top = await _create(client, admin_headers, issuer, "Top")
    child = await _create(client, admin_headers, issuer, "Child", parent_ca_id=top["id"])
    await _create(client, admin_headers, issuer, "Grandchild", parent_ca_id=child["id"])
    await _choose(client, admin_headers, issuer, child["id"])
    r = await client.delete(f"/api/v1/issuers/{issuer}", headers=admin_headers)
    assert r.status_code in (200, 204), r.text
    r = await client.get(f"/api/v1/intermediates/{child['id']}", headers=admin_headers)
    assert r.status_code == 404
