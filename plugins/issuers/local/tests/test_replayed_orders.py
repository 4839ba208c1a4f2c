"""A retried order (same idempotency key and order time) yields the same certificate, byte for byte.

This is what makes a worker crash between "signed" and "stored" harmless: the retry cannot put a
second certificate for the order into the world.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from certctl_sdk import IssueRequest, KeyType, SubjectAltNames
from certctl_sdk.pem import load_certificate
from certctl_sdk.testing import ManualClock

HOST = "replay.example.test"


def order(csr_pem: str, at, key: str = "issue:mc-1", **fields) -> IssueRequest:
    return IssueRequest(
        csr_pem=csr_pem,
        common_name=HOST,
        sans=SubjectAltNames(dns=(HOST,)),
        validity_seconds=30 * 86400,
        idempotency_key=key,
        requested_at=at,
        **fields,
    )


@pytest.mark.parametrize(
    "ca_key", [KeyType.ECDSA_P256, KeyType.ECDSA_P384, KeyType.RSA_2048, KeyType.ED25519]
)
async def test_the_same_order_signed_twice_is_one_certificate(root_issuer, csrs, ca_key):
    issuer = await root_issuer(ca_key)
    at = issuer.context.clock()
    first = await issuer.issue(order(csrs(KeyType.ECDSA_P256), at))
    again = await issuer.issue(order(csrs(KeyType.ECDSA_P256), at))
    assert first.certificate_pem == again.certificate_pem


async def test_any_difference_in_the_order_gives_another_serial(root_issuer, csrs):
    issuer = await root_issuer(KeyType.ECDSA_P256)
    at = issuer.context.clock()
    csr = csrs(KeyType.ECDSA_P256)
    serials = {
        load_certificate(cert.certificate_pem).serial_number
        for cert in [
            await issuer.issue(order(csr, at)),
            await issuer.issue(order(csr, at, key="issue:mc-2")),
            await issuer.issue(order(csr, at + timedelta(seconds=1))),
            await issuer.issue(order(csrs(KeyType.ECDSA_P384), at)),
            await issuer.issue(order(csr, at, must_staple=True)),
        ]
    }
    assert len(serials) == 5
    assert all(0 < s < 2**159 for s in serials)


async def test_orders_without_a_key_or_time_are_signed_afresh(root_issuer, csrs):
    issuer = await root_issuer(KeyType.ECDSA_P256)
    csr = csrs(KeyType.ECDSA_P256)
    plain = IssueRequest(
        csr_pem=csr, common_name=HOST, sans=SubjectAltNames(dns=(HOST,)), validity_seconds=86400
    )
    a, b = await issuer.issue(plain), await issuer.issue(plain)
    assert (
        load_certificate(a.certificate_pem).serial_number
        != load_certificate(b.certificate_pem).serial_number
    )


async def test_a_day_old_order_is_not_replayed(make_issuer, csrs):
    clock = ManualClock()
    issuer = make_issuer(ca_key_type=KeyType.ECDSA_P256, clock=clock)
    at = clock()
    first = await issuer.issue(order(csrs(KeyType.ECDSA_P256), at))
    clock.advance(timedelta(hours=25))
    late = await issuer.issue(order(csrs(KeyType.ECDSA_P256), at))
    leaf = load_certificate(late.certificate_pem)
    assert leaf.serial_number != load_certificate(first.certificate_pem).serial_number
    assert leaf.not_valid_before_utc >= clock() - timedelta(hours=1)  # counted from now
