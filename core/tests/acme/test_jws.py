"""JWS parsing and verification (RFC 8555 §6.2, §7.3.4, §7.3.5): every refusal names its type."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from jwcrypto import jwk, jws

from certctl.domain.acme.jws import (
    ALGORITHMS,
    eab_key_id,
    key_authorization,
    parse_jws,
    thumbprint,
    verify_eab,
    verify_key_change,
    verify_signature,
)
from certctl.domain.acme.problems import AcmeProblem

URL = "https://certctl.test.local/acme/profile/p1/new-order"
NONCE = "bm9uY2Utbm9uY2Utbm9uY2U"
ACCOUNT = "https://certctl.test.local/acme/profile/p1/account/acc-1"
KEY_CHANGE = "https://certctl.test.local/acme/profile/p1/key-change"
NEW_ACCOUNT = "https://certctl.test.local/acme/profile/p1/new-account"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def problem(kind: str, func: Any, *args: Any, **kwargs: Any) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as info:
        func(*args, **kwargs)
    assert info.value.kind == kind, info.value.detail
    return info.value


def as_object(body: bytes) -> dict[str, Any]:
    return dict(json.loads(body))


def rebuild(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def hand_signed(key: jwk.JWK, header: dict[str, Any], payload: bytes, alg: str) -> bytes:
    """A flattened JWS whose header we choose freely (jwcrypto would refuse some on signing)."""
    token = jws.JWS(payload)
    token.add_signature(key, alg=alg, protected=json.dumps(header))
    return token.serialize(compact=False).encode()


# --- well-formed messages ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["EC-P-256", "EC-P-384", "RSA", "OKP-Ed25519"])
def test_every_supported_key_signs_a_verifiable_request(signer, kind):
    s = signer(kind)
    parsed = parse_jws(s.sign({"identifiers": []}, url=URL, nonce=NONCE))
    assert parsed.alg == s.alg and parsed.url == URL and parsed.nonce == NONCE
    assert parsed.kid is None
    assert parsed.jwk == {k: v for k, v in s.public_jwk.items() if k in parsed.jwk}
    assert parsed.json() == {"identifiers": []}
    verify_signature(parsed, s.public_jwk)
    assert thumbprint(s.public_jwk) == s.thumbprint()


def test_kid_request_and_post_as_get(signer):
    s = signer()
    s.kid = ACCOUNT
    parsed = parse_jws(s.sign(None, url=URL, nonce=NONCE))
    assert parsed.kid == ACCOUNT and parsed.jwk is None
    assert parsed.payload == b"" and parsed.json() is None
    verify_signature(parsed, s.public_jwk)


def test_nonce_is_optional_here(signer):
    parsed = parse_jws(signer().sign({}, url=URL, nonce=None))
    assert parsed.nonce is None
    assert parsed.json() == {}


def test_key_authorization_is_token_dot_thumbprint(signer):
    s = signer()
    assert key_authorization("tok", s.public_jwk) == "tok." + s.thumbprint()


def test_thumbprint_matches_rfc_7638_example():
    """RFC 7638 §3.1: the example RSA key's thumbprint."""
    key = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tS"
        "oc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65Y"
        "GjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdk"
        "t-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqD"
        "Kgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


# --- hostile and broken messages --------------------------------------------------------------


def test_alg_none_is_refused_with_the_algorithm_list(signer):
    s = signer()
    header = {"alg": "none", "jwk": s.public_jwk, "url": URL, "nonce": NONCE}
    body = rebuild({"protected": b64json(header), "payload": b64json({}), "signature": ""})
    p = problem("badSignatureAlgorithm", parse_jws, body)
    assert p.algorithms == list(ALGORITHMS)
    assert p.document()["algorithms"] == list(ALGORITHMS)


def test_hs256_signed_with_the_public_key_is_refused(signer):
    """The classic confusion: an HMAC keyed with the public key's bytes."""
    s = signer()
    header = {"alg": "HS256", "jwk": s.public_jwk, "url": URL, "nonce": NONCE}
    oct_key = jwk.JWK(kty="oct", k=b64(json.dumps(s.public_jwk).encode()))
    problem("badSignatureAlgorithm", parse_jws, hand_signed(oct_key, header, b"{}", "HS256"))


def test_non_string_alg_is_refused(signer):
    body = as_object(signer().sign({}, url=URL, nonce=NONCE))
    body["protected"] = b64json({"alg": ["ES256"], "kid": ACCOUNT, "url": URL})
    problem("badSignatureAlgorithm", parse_jws, rebuild(body))


def test_both_kid_and_jwk_is_malformed(signer):
    s = signer()
    problem("malformed", parse_jws, s.sign({}, url=URL, nonce=NONCE, extra={"kid": ACCOUNT}))


def test_neither_kid_nor_jwk_is_malformed(signer):
    s = signer()
    header = {"alg": s.alg, "url": URL, "nonce": NONCE}
    problem("malformed", parse_jws, hand_signed(s.key, header, b"{}", s.alg))


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi"])
def test_a_private_rsa_jwk_is_malformed(signer, member):
    s = signer("RSA")
    private = s.key.export_private(as_dict=True)
    header = {"alg": "RS256", "jwk": {**s.public_jwk, member: private[member]}, "url": URL}
    problem("malformed", parse_jws, hand_signed(s.key, header, b"{}", "RS256"))


def test_a_private_ec_jwk_is_malformed(signer):
    s = signer()
    header = {"alg": "ES256", "jwk": s.key.export_private(as_dict=True), "url": URL}
    problem("malformed", parse_jws, hand_signed(s.key, header, b"{}", "ES256"))


def test_a_symmetric_jwk_is_malformed(signer):
    s = signer()
    header = {"alg": "ES256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}, "url": URL}
    problem("malformed", parse_jws, hand_signed(s.key, header, b"{}", "ES256"))


def test_rsa_1024_is_a_bad_public_key():
    key = jwk.JWK.generate(kty="RSA", size=1024)
    header = {"alg": "RS256", "jwk": key.export_public(as_dict=True), "url": URL}
    p = problem("badPublicKey", parse_jws, hand_signed(key, header, b"{}", "RS256"))
    assert "1024" in p.detail


def test_an_rsa_key_with_a_huge_exponent_is_a_bad_public_key(signer):
    s = signer("RSA")
    header = {"alg": "RS256", "jwk": {**s.public_jwk, "e": b64(b"\x01" * 9)}, "url": URL}
    p = problem("badPublicKey", parse_jws, hand_signed(s.key, header, b"{}", "RS256"))
    assert "exponent" in p.detail


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ({"kty": "EC", "crv": "P-521"}, "curve"),
        ({"kty": "OKP", "crv": "X25519"}, "curve"),
        ({"kty": "DSA"}, "type"),
        ({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, "length"),
    ],
)
def test_unsupported_keys_are_bad_public_keys(signer, bad, why):
    s = signer()
    template = {"x": s.public_jwk["x"], "y": s.public_jwk["y"]}
    header = {"alg": "ES256", "jwk": {**template, **bad}, "url": URL}
    p = problem("badPublicKey", parse_jws, hand_signed(s.key, header, b"{}", "ES256"))
    assert why in p.detail


def test_an_ec_point_off_the_curve_is_a_bad_public_key(signer):
    s = signer()
    off = dict(s.public_jwk)
    y = bytearray(base64.urlsafe_b64decode(off["y"] + "=="))
    y[-1] ^= 1
    off["y"] = b64(bytes(y))
    header = {"alg": "ES256", "jwk": off, "url": URL}
    problem("badPublicKey", parse_jws, hand_signed(s.key, header, b"{}", "ES256"))


@pytest.mark.parametrize(
    ("kind", "alg"),
    [("EC-P-256", "ES384"), ("EC-P-384", "ES256"), ("EC-P-256", "RS256"), ("RSA", "ES256")],
)
def test_an_algorithm_that_does_not_fit_the_key_is_refused(signer, kind, alg):
    s = signer(kind)
    header = {"alg": alg, "jwk": s.public_jwk, "url": URL, "nonce": NONCE}
    body = rebuild({"protected": b64json(header), "payload": b64json({}), "signature": "AAAA"})
    p = problem("badSignatureAlgorithm", parse_jws, body)
    assert p.algorithms == list(ALGORITHMS)


def test_an_algorithm_that_does_not_fit_the_stored_key_is_refused(signer):
    s, other = signer("EC-P-256"), signer("OKP-Ed25519")
    s.kid = ACCOUNT
    parsed = parse_jws(s.sign({}, url=URL, nonce=NONCE))
    problem("badSignatureAlgorithm", verify_signature, parsed, other.public_jwk)


def test_a_tampered_payload_fails_verification(signer):
    s = signer()
    body = as_object(s.sign({"a": 1}, url=URL, nonce=NONCE))
    body["payload"] = b64json({"a": 2})
    p = problem("malformed", verify_signature, parse_jws(rebuild(body)), s.public_jwk)
    assert p.detail == "JWS signature verification failed"


def test_a_tampered_header_fails_verification(signer):
    s = signer()
    s.kid = ACCOUNT
    body = as_object(s.sign({}, url=URL, nonce=NONCE))
    header = json.loads(base64.urlsafe_b64decode(body["protected"] + "=="))
    header["url"] = URL + "x"
    body["protected"] = b64json(header)
    problem("malformed", verify_signature, parse_jws(rebuild(body)), s.public_jwk)


def test_another_key_fails_verification(signer):
    s, other = signer(), signer()
    parsed = parse_jws(s.sign({}, url=URL, nonce=NONCE))
    problem("malformed", verify_signature, parsed, other.public_jwk)


def test_a_padded_ecdsa_signature_is_refused(signer):
    """r and s each with a leading zero byte would still verify in a lax implementation."""
    s = signer()
    body = as_object(s.sign({}, url=URL, nonce=NONCE))
    raw = base64.urlsafe_b64decode(body["signature"] + "==")
    body["signature"] = b64(b"\0" + raw[:32] + b"\0" + raw[32:])
    problem("malformed", verify_signature, parse_jws(rebuild(body)), s.public_jwk)


def test_the_general_serialization_is_malformed(signer):
    s = signer()
    flat = as_object(s.sign({}, url=URL, nonce=NONCE))
    general = {
        "payload": flat["payload"],
        "signatures": [{"protected": flat["protected"], "signature": flat["signature"]}],
    }
    problem("malformed", parse_jws, rebuild(general))
    problem("malformed", parse_jws, rebuild({**flat, "signatures": general["signatures"]}))


def test_an_unprotected_header_is_malformed(signer):
    flat = as_object(signer().sign({}, url=URL, nonce=NONCE))
    problem("malformed", parse_jws, rebuild({**flat, "header": {"kid": ACCOUNT}}))


def test_the_compact_serialization_is_malformed(signer):
    s = signer()
    token = jws.JWS(b"{}")
    token.add_signature(s.key, alg=s.alg, protected=json.dumps({"alg": s.alg, "url": URL}))
    problem("malformed", parse_jws, token.serialize(compact=True).encode())


@pytest.mark.parametrize("field", ["protected", "payload", "signature"])
@pytest.mark.parametrize("value", ["a+b/", "abc=", "a", "!!!!", 17, None])
def test_bad_base64url_is_malformed(signer, field, value):
    flat = as_object(signer().sign({}, url=URL, nonce=NONCE))
    flat[field] = value
    problem("malformed", parse_jws, rebuild(flat))


def test_non_canonical_base64url_is_malformed(signer):
    """Two spellings of one payload (unused trailing bits set) must not both be accepted."""
    flat = as_object(signer().sign({}, url=URL, nonce=NONCE))
    flat["payload"] = "e31"  # decodes to "{}" like "e30"
    problem("malformed", parse_jws, rebuild(flat))


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b'"x"', b"\xff\xfe", b"{" * 100_000, b"[" * 500 + b"]" * 500]
)
def test_garbage_bodies_are_malformed(body):
    problem("malformed", parse_jws, body)


def test_missing_member_is_malformed(signer):
    flat = as_object(signer().sign({}, url=URL, nonce=NONCE))
    del flat["signature"]
    problem("malformed", parse_jws, rebuild(flat))


def test_a_header_that_is_not_an_object_is_malformed(signer):
    flat = as_object(signer().sign({}, url=URL, nonce=NONCE))
    flat["protected"] = b64json(["alg", "ES256"])
    problem("malformed", parse_jws, rebuild(flat))


def test_duplicate_header_members_are_malformed(signer):
    s = signer()
    s.kid = ACCOUNT
    flat = as_object(s.sign({}, url=URL, nonce=NONCE))
    raw = f'{{"alg":"ES256","kid":"{ACCOUNT}","url":"{URL}","url":"https://evil.example/"}}'
    flat["protected"] = b64(raw.encode())
    problem("malformed", parse_jws, rebuild(flat))


@pytest.mark.parametrize(
    "extra",
    [{"crit": ["b64"]}, {"b64": False}, {"url": 5}, {"url": ""}, {"nonce": 5}, {"kid": 7}],
)
def test_refused_header_members(signer, extra):
    flat = as_object(signer().sign({}, url=URL, nonce=NONCE))
    flat["protected"] = b64json({"alg": "ES256", "kid": ACCOUNT, "url": URL} | extra)
    problem("malformed", parse_jws, rebuild(flat))


def test_a_header_without_url_is_malformed(signer):
    s = signer()
    header = {"alg": s.alg, "jwk": s.public_jwk, "nonce": NONCE}
    problem("malformed", parse_jws, hand_signed(s.key, header, b"{}", s.alg))


def test_an_oversized_body_is_malformed(signer):
    s = signer()
    problem("malformed", parse_jws, s.sign({"pad": "x" * 70_000}, url=URL, nonce=NONCE))


@pytest.mark.parametrize(
    "payload", [b"[]", b"3", b"not json", b"[" * 40 + b"]" * 40, b'{"a": NaN}', b'{"a":1,"a":2}']
)
def test_a_payload_that_is_not_a_json_object_is_malformed(signer, payload):
    s = signer()
    header = {"alg": s.alg, "jwk": s.public_jwk, "url": URL, "nonce": NONCE}
    parsed = parse_jws(hand_signed(s.key, header, payload, s.alg))
    verify_signature(parsed, s.public_jwk)
    problem("malformed", parsed.json)


# --- key change (RFC 8555 §7.3.5) -------------------------------------------------------------


def key_change_request(old, new, *, inner_url=KEY_CHANGE, payload=None, inner=None) -> Any:
    old.kid = ACCOUNT
    change = payload or {"account": ACCOUNT, "oldKey": old.public_jwk}
    inner_jws = inner or new.sign_inner(change, url=inner_url)
    return parse_jws(old.sign(inner_jws, url=KEY_CHANGE, nonce=NONCE))


@pytest.mark.parametrize("kind", ["EC-P-256", "RSA", "OKP-Ed25519", "EC-P-384"])
def test_key_change_returns_the_new_public_key(signer, kind):
    old, new = signer(), signer(kind)
    outer = key_change_request(old, new)
    verify_signature(outer, old.public_jwk)
    got = verify_key_change(outer, account_url=ACCOUNT, old_key=old.public_jwk)
    assert thumbprint(got) == new.thumbprint()
    assert set(got) <= {"kty", "crv", "x", "y", "n", "e"}


def test_key_change_with_the_wrong_account_is_malformed(signer):
    old, new = signer(), signer()
    outer = key_change_request(
        old, new, payload={"account": ACCOUNT + "-other", "oldKey": old.public_jwk}
    )
    problem("malformed", verify_key_change, outer, account_url=ACCOUNT, old_key=old.public_jwk)


def test_key_change_with_the_wrong_old_key_is_malformed(signer):
    old, new, stranger = signer(), signer(), signer()
    outer = key_change_request(
        old, new, payload={"account": ACCOUNT, "oldKey": stranger.public_jwk}
    )
    problem("malformed", verify_key_change, outer, account_url=ACCOUNT, old_key=old.public_jwk)
    outer = key_change_request(old, new, payload={"account": ACCOUNT})
    problem("malformed", verify_key_change, outer, account_url=ACCOUNT, old_key=old.public_jwk)


def test_key_change_with_another_url_is_malformed(signer):
    old, new = signer(), signer()
    outer = key_change_request(old, new, inner_url=KEY_CHANGE + "/elsewhere")
    problem("malformed", verify_key_change, outer, account_url=ACCOUNT, old_key=old.public_jwk)


def test_key_change_inner_with_a_nonce_is_malformed(signer):
    old, new = signer(), signer()
    change = {"account": ACCOUNT, "oldKey": old.public_jwk}
    inner = as_object(new.sign(change, url=KEY_CHANGE, nonce=NONCE, use_jwk=True))
    outer = key_change_request(old, new, inner=inner)
    p = problem("malformed", verify_key_change, outer, account_url=ACCOUNT, old_key=old.public_jwk)
    assert "nonce" in p.detail


def test_key_change_inner_with_kid_is_malformed(signer):
    old, new = signer(), signer()
    new.kid = ACCOUNT
    change = {"account": ACCOUNT, "oldKey": old.public_jwk}
    inner = as_object(new.sign(change, url=KEY_CHANGE, nonce=None, use_jwk=False))
    outer = key_change_request(old, new, inner=inner)
    problem("malformed", verify_key_change, outer, account_url=ACCOUNT, old_key=old.public_jwk)


def test_key_change_inner_signed_by_another_key_is_malformed(signer):
    old, new, stranger = signer(), signer(), signer()
    inner = new.sign_inner({"account": ACCOUNT, "oldKey": old.public_jwk}, url=KEY_CHANGE)
    forged = stranger.sign_inner({"account": ACCOUNT, "oldKey": old.public_jwk}, url=KEY_CHANGE)
    inner["signature"] = forged["signature"]
    outer = key_change_request(old, new, inner=inner)
    p = problem("malformed", verify_key_change, outer, account_url=ACCOUNT, old_key=old.public_jwk)
    assert p.detail == "JWS signature verification failed"


def test_key_change_inner_with_a_refused_alg(signer):
    old, new = signer(), signer()
    header = {"alg": "HS256", "jwk": new.public_jwk, "url": KEY_CHANGE}
    inner = {"protected": b64json(header), "payload": b64json({}), "signature": "AAAA"}
    outer = key_change_request(old, new, inner=inner)
    problem(
        "badSignatureAlgorithm",
        verify_key_change,
        outer,
        account_url=ACCOUNT,
        old_key=old.public_jwk,
    )


def test_key_change_to_the_same_key_is_malformed(signer):
    old = signer()
    outer = key_change_request(old, old)
    p = problem("malformed", verify_key_change, outer, account_url=ACCOUNT, old_key=old.public_jwk)
    assert "current key" in p.detail


def test_key_change_without_an_inner_jws_is_malformed(signer):
    old = signer()
    old.kid = ACCOUNT
    for payload in (None, {"account": ACCOUNT}):
        outer = parse_jws(old.sign(payload, url=KEY_CHANGE, nonce=NONCE))
        problem("malformed", verify_key_change, outer, account_url=ACCOUNT, old_key=old.public_jwk)


# --- External Account Binding (RFC 8555 §7.3.4) -----------------------------------------------

HMAC_KEY = bytes(range(32))
EAB_KID = "eab-0123456789abcdef"


def eab_binding(
    account_jwk: dict[str, Any],
    *,
    key: bytes = HMAC_KEY,
    alg: str = "HS256",
    url: str = NEW_ACCOUNT,
    header: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What lego or certbot put in ``externalAccountBinding`` (hand-built, any algorithm)."""
    protected = b64json(header if header is not None else {"alg": alg, "kid": EAB_KID, "url": url})
    payload = b64json(account_jwk)
    digest = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}.get(alg, "sha256")
    mac = hmac.new(key, f"{protected}.{payload}".encode(), getattr(hashlib, digest)).digest()
    return {"protected": protected, "payload": payload, "signature": b64(mac)}


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_eab_binding_verifies(signer, alg):
    s = signer()
    binding = eab_binding(s.public_jwk, alg=alg)
    assert eab_key_id(binding, url=NEW_ACCOUNT) == EAB_KID
    verify_eab(binding, hmac_key=HMAC_KEY, account_key=s.public_jwk)


def test_eab_binding_made_by_jwcrypto_verifies(signer):
    """The way real clients build it: a JWS of the account JWK with an oct key."""
    s = signer("RSA")
    token = jws.JWS(json.dumps(s.public_jwk).encode())
    protected = {"alg": "HS256", "kid": EAB_KID, "url": NEW_ACCOUNT}
    token.add_signature(
        jwk.JWK(kty="oct", k=b64(HMAC_KEY)), alg="HS256", protected=json.dumps(protected)
    )
    binding = json.loads(token.serialize(compact=False))
    verify_eab(binding, hmac_key=HMAC_KEY, account_key=s.public_jwk)


def test_eab_with_the_wrong_mac_is_unauthorized(signer):
    s = signer()
    binding = eab_binding(s.public_jwk, key=b"\x01" * 32)
    problem("unauthorized", verify_eab, binding, hmac_key=HMAC_KEY, account_key=s.public_jwk)


def test_eab_binding_another_account_key_is_unauthorized(signer):
    s, other = signer(), signer()
    binding = eab_binding(other.public_jwk)
    problem("unauthorized", verify_eab, binding, hmac_key=HMAC_KEY, account_key=s.public_jwk)


def test_eab_payload_that_is_not_a_public_key_is_refused(signer):
    s = signer()
    binding = eab_binding(s.key.export_private(as_dict=True))
    problem("malformed", verify_eab, binding, hmac_key=HMAC_KEY, account_key=s.public_jwk)


def test_eab_for_another_url_is_malformed(signer):
    binding = eab_binding(signer().public_jwk, url=NEW_ACCOUNT + "/x")
    problem("malformed", eab_key_id, binding, url=NEW_ACCOUNT)


@pytest.mark.parametrize("alg", ["ES256", "none", "RS256", None])
def test_eab_with_a_non_mac_alg_is_malformed(signer, alg):
    s = signer()
    header = {"kid": EAB_KID, "url": NEW_ACCOUNT} | ({"alg": alg} if alg else {})
    binding = eab_binding(s.public_jwk, header=header)
    problem("malformed", eab_key_id, binding, url=NEW_ACCOUNT)
    problem("malformed", verify_eab, binding, hmac_key=HMAC_KEY, account_key=s.public_jwk)


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "HS256", "kid": EAB_KID, "url": NEW_ACCOUNT, "nonce": NONCE},
        {"alg": "HS256", "url": NEW_ACCOUNT},
        {"alg": "HS256", "kid": "", "url": NEW_ACCOUNT},
        {"alg": "HS256", "kid": EAB_KID, "url": NEW_ACCOUNT, "jwk": {"kty": "oct"}},
    ],
)
def test_eab_header_rules(signer, header):
    binding = eab_binding(signer().public_jwk, header=header)
    problem("malformed", eab_key_id, binding, url=NEW_ACCOUNT)


@pytest.mark.parametrize("binding", ["a string", ["list"], {"protected": "e30"}, None])
def test_eab_that_is_not_a_flattened_jws_is_malformed(binding):
    problem("malformed", eab_key_id, binding, url=NEW_ACCOUNT)
