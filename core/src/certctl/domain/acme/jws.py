"""ACME request signatures: flattened JWS (RFC 8555 §6.2, RFC 7515), key change and EAB.

Every ACME POST is one flattened JWS signed by the account key (``kid``) or, for new-account
and certificate-key revocation, by a key it carries (``jwk``). This module parses such a body
strictly — one serialization, known header members, canonical base64url, no duplicate JSON
members, bounded size and depth — so that what we check is exactly what was signed, and it
verifies signatures with jwcrypto's algorithm engines over the bytes the client sent (never a
re-encoded header). It knows nothing of nonces, URLs of routes or accounts: the protocol
controller checks ``nonce`` and ``url`` against the request and looks ``kid`` up.

Every failure is an :class:`AcmeProblem` with the RFC's error type: ``malformed`` for a broken
message or a bad signature, ``badSignatureAlgorithm`` (with the ``algorithms`` we accept) for an
algorithm we refuse or one that does not fit the key, ``badPublicKey`` for a key we refuse,
``unauthorized`` for an External Account Binding whose MAC or key does not match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from jwcrypto.jwa import JWA
from jwcrypto.jwk import JWK

from certctl.domain.acme.problems import AcmeProblem

__all__ = [
    "ALGORITHMS",
    "EAB_ALGORITHMS",
    "MAX_JWS_BYTES",
    "ParsedJws",
    "eab_key_id",
    "key_authorization",
    "parse_jws",
    "thumbprint",
    "verify_eab",
    "verify_key_change",
    "verify_signature",
]

ALGORITHMS: tuple[str, ...] = ("RS256", "ES256", "ES384", "EdDSA")
"""Account-key algorithms, advertised in ``badSignatureAlgorithm`` problems."""

EAB_ALGORITHMS: tuple[str, ...] = ("HS256", "HS384", "HS512")
"""MAC algorithms of an External Account Binding (RFC 8555 §7.3.4)."""

MAX_JWS_BYTES = 64 * 1024
"""A JWS larger than this is refused before parsing (the largest real one, a finalize with an
RSA-8192 CSR, is under 8 KiB; the app caps bodies at 1 MiB, which is too much to parse)."""

MAX_DEPTH = 16
"""Deepest JSON nesting accepted anywhere (a key-change payload is three levels deep)."""

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_FIELDS = frozenset({"protected", "payload", "signature"})
_HEADER_FIELDS = frozenset({"alg", "jwk", "kid", "nonce", "url"})
"""Members we understand; others are ignored (RFC 7515 §4), except the two below."""
_REFUSED_HEADER_FIELDS = frozenset({"crit", "b64"})
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CURVE_OF = {"ES256": "P-256", "ES384": "P-384", "EdDSA": "Ed25519"}
_EC_SIZE = {"P-256": 32, "P-384": 48}
_RSA_BITS = (2048, 8192)
_EAB_HASH = {"HS256": "sha256", "HS384": "sha384", "HS512": "sha512"}


@dataclass(frozen=True, slots=True)
class ParsedJws:
    """A structurally valid flattened JWS whose signature is not yet checked.

    ``signing_input`` and ``signature`` are what :func:`verify_signature` checks: the
    ``protected.payload`` bytes exactly as sent, and the decoded signature.
    """

    protected: dict[str, Any]
    payload: bytes
    """The decoded payload; ``b""`` for POST-as-GET."""
    alg: str
    url: str
    nonce: str | None
    kid: str | None
    jwk: dict[str, Any] | None
    """The canonical public JWK of a ``jwk`` header (validated), else None."""
    signing_input: bytes = b""
    signature: bytes = b""

    def json(self) -> dict[str, Any] | None:
        """The payload as a JSON object; None for POST-as-GET (an empty payload)."""
        if self.payload == b"":
            return None
        value = _loads(self.payload, "payload")
        if not isinstance(value, dict):
            raise AcmeProblem("malformed", "the JWS payload must be a JSON object")
        return value


def _malformed(detail: str) -> AcmeProblem:
    return AcmeProblem("malformed", detail)


def _b64decode(value: Any, what: str) -> bytes:
    """Strict base64url without padding: the canonical spelling only (RFC 7515 §2)."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value) or len(value) % 4 == 1:
        raise _malformed(f"{what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _malformed(f"{what} is not base64url") from exc
    if _b64encode(raw) != value:
        raise _malformed(f"{what} is not canonical base64url")
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _malformed(f"duplicate JSON member {name!r}")
        out[name] = value
    return out


def _no_constant(name: str) -> Any:
    raise _malformed(f"{name} is not JSON")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (the input is already size-bounded)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            if level > MAX_DEPTH:
                return level
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _loads(raw: bytes, what: str) -> Any:
    """JSON with duplicate members refused and nesting bounded."""
    if len(raw) > MAX_JWS_BYTES:
        raise _malformed(f"{what} is too large")
    try:
        value = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except AcmeProblem:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _malformed(f"{what} is not valid JSON") from exc
    if _depth(value) > MAX_DEPTH:
        raise _malformed(f"{what} is nested too deeply")
    return value


def _canonical(key: Any, *, what: str = "jwk") -> dict[str, Any]:
    """The RFC 7638 required members of a public key, after the structural checks.

    Private members → ``malformed`` (a client must never send its private key); an unknown
    ``kty``/``crv`` or a missing member → ``badPublicKey``.
    """
    if not isinstance(key, dict):
        raise _malformed(f"{what} must be a JSON object")
    private = _PRIVATE_MEMBERS & key.keys()
    if private:
        raise _malformed(f"{what} holds private key members ({', '.join(sorted(private))})")
    kty = key.get("kty")
    if kty == "RSA":
        names: tuple[str, ...] = ("e", "kty", "n")
    elif kty == "EC":
        names = ("crv", "kty", "x", "y")
    elif kty == "OKP":
        names = ("crv", "kty", "x")
    else:
        raise AcmeProblem("badPublicKey", f"{what}: key type {kty!r} is not supported")
    if not all(isinstance(key.get(n), str) for n in names):
        raise AcmeProblem("badPublicKey", f"{what}: a {kty} key needs {', '.join(names)}")
    return {n: key[n] for n in names}


def _load_key(key: Any, *, what: str = "jwk") -> tuple[dict[str, Any], JWK]:
    """Validate a public key fully (type, size, curve point) and import it for verifying."""
    public = _canonical(key, what=what)
    kty = public["kty"]
    try:
        if kty == "RSA":
            bits = int.from_bytes(_b64decode(public["n"], f"{what}.n"), "big").bit_length()
            if not _RSA_BITS[0] <= bits <= _RSA_BITS[1]:
                raise AcmeProblem(
                    "badPublicKey", f"{what}: RSA keys must have 2048 to 8192 bits, not {bits}"
                )
            # A huge public exponent makes every verification slow; real keys use 65537.
            if len(_b64decode(public["e"], f"{what}.e")) > 4:
                raise AcmeProblem("badPublicKey", f"{what}: the RSA exponent is too large")
        elif kty == "EC":
            size = _EC_SIZE.get(public["crv"])
            if size is None:
                raise AcmeProblem("badPublicKey", f"{what}: curve {public['crv']!r} unsupported")
            for member in ("x", "y"):
                if len(_b64decode(public[member], f"{what}.{member}")) != size:
                    raise AcmeProblem("badPublicKey", f"{what}.{member} has the wrong length")
        else:
            if public["crv"] != "Ed25519":
                raise AcmeProblem("badPublicKey", f"{what}: curve {public['crv']!r} unsupported")
            if len(_b64decode(public["x"], f"{what}.x")) != 32:
                raise AcmeProblem("badPublicKey", f"{what}.x has the wrong length")
    except AcmeProblem as problem:
        if problem.kind == "malformed":  # bad base64 inside a key is a bad key
            raise AcmeProblem("badPublicKey", problem.detail) from problem
        raise
    try:
        imported = JWK(**public)
        imported.get_op_key("verify")  # builds the key: an EC point off the curve fails here
    except Exception as exc:  # jwcrypto and cryptography raise many types
        raise AcmeProblem("badPublicKey", f"{what} is not a valid public key") from exc
    return public, imported


def _check_alg_fits(alg: str, public: dict[str, Any]) -> None:
    kty = public["kty"]
    fits = (alg == "RS256" and kty == "RSA") or (
        alg in _CURVE_OF and kty in ("EC", "OKP") and public.get("crv") == _CURVE_OF[alg]
    )
    if not fits:
        curve = f" {public['crv']}" if "crv" in public else ""
        raise AcmeProblem(
            "badSignatureAlgorithm",
            f"{alg} does not fit a {kty}{curve} key",
            algorithms=list(ALGORITHMS),
        )


def _split(obj: Any, what: str) -> tuple[str, str, bytes, dict[str, Any], bytes]:
    """(protected b64, payload b64, signature, header, payload) of a flattened JWS object."""
    if not isinstance(obj, dict):
        raise _malformed(f"{what} must be a JSON object (flattened JWS serialization)")
    if "signatures" in obj:
        raise _malformed(f"{what}: only the flattened JWS serialization is accepted")
    if "header" in obj:
        raise _malformed(f"{what}: an unprotected header is not accepted")
    if obj.keys() != _FIELDS:
        raise _malformed(f"{what} must have exactly protected, payload and signature")
    protected_b64, payload_b64 = obj["protected"], obj["payload"]
    raw_header = _b64decode(protected_b64, f"{what} protected header")
    header = _loads(raw_header, f"{what} protected header")
    if not isinstance(header, dict):
        raise _malformed(f"{what} protected header must be a JSON object")
    refused = _REFUSED_HEADER_FIELDS & header.keys()
    if refused:
        raise _malformed(f"{what}: header members {sorted(refused)} are not supported")
    payload = _b64decode(payload_b64, f"{what} payload")
    signature = _b64decode(obj["signature"], f"{what} signature")
    return protected_b64, payload_b64, signature, header, payload


def _parse_object(obj: Any, what: str = "JWS") -> ParsedJws:
    protected_b64, payload_b64, signature, header, payload = _split(obj, what)
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise AcmeProblem(
            "badSignatureAlgorithm",
            f"{what}: algorithm {alg!r} is not accepted",
            algorithms=list(ALGORITHMS),
        )
    kid, key = header.get("kid"), header.get("jwk")
    if (kid is None) == (key is None):
        raise _malformed(f"{what} must carry exactly one of kid and jwk")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise _malformed(f"{what}: kid must be a non-empty string")
    public: dict[str, Any] | None = None
    if key is not None:
        public, _ = _load_key(key)
        _check_alg_fits(alg, public)
    url, nonce = header.get("url"), header.get("nonce")
    if not isinstance(url, str) or not url:
        raise _malformed(f"{what}: the protected header needs a url")
    if nonce is not None and not isinstance(nonce, str):
        raise _malformed(f"{what}: nonce must be a string")
    return ParsedJws(
        protected=header,
        payload=payload,
        alg=alg,
        url=url,
        nonce=nonce,
        kid=kid,
        jwk=public,
        signing_input=f"{protected_b64}.{payload_b64}".encode("ascii"),
        signature=signature,
    )


def parse_jws(body: bytes) -> ParsedJws:
    """Parse an ACME request body (``application/jose+json``); the signature is not checked."""
    if len(body) > MAX_JWS_BYTES:
        raise _malformed("the JWS is too large")
    return _parse_object(_loads(body, "JWS"))


def _signature_length(alg: str, public: dict[str, Any]) -> int:
    if alg == "RS256":
        return (int.from_bytes(_b64decode(public["n"], "jwk.n"), "big").bit_length() + 7) // 8
    return {"ES256": 64, "ES384": 96, "EdDSA": 64}[alg]


def verify_signature(jws: ParsedJws, key: dict[str, Any]) -> None:
    """Check ``jws`` was signed by ``key`` (a public JWK: the account's or the ``jwk`` header).

    The signature must have its algorithm's exact length (ECDSA ``r || s`` is otherwise
    malleable: jwcrypto would accept padded halves).
    """
    public, imported = _load_key(key)
    _check_alg_fits(jws.alg, public)
    ok = len(jws.signature) == _signature_length(jws.alg, public)
    if ok:
        try:
            JWA.signing_alg(jws.alg).verify(imported, jws.signing_input, jws.signature)
        except Exception:  # noqa: BLE001 - InvalidSignature, or a bad RSA length
            ok = False
    if not ok:
        raise _malformed("JWS signature verification failed")


def thumbprint(key: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: the account's identity in key authorizations."""
    public = _canonical(key)
    digest = hashlib.sha256(
        json.dumps(public, sort_keys=True, separators=(",", ":")).encode("utf-8")
    ).digest()
    return _b64encode(digest)


def key_authorization(token: str, key: dict[str, Any]) -> str:
    """``token || '.' || thumbprint`` (RFC 8555 §8.1), what http-01/dns-01/tls-alpn-01 prove."""
    return f"{token}.{thumbprint(key)}"


def verify_key_change(
    outer: ParsedJws, *, account_url: str, old_key: dict[str, Any]
) -> dict[str, Any]:
    """Check a key-change request (RFC 8555 §7.3.5) and return the new canonical public JWK.

    The caller has verified ``outer`` with the account's current key (``old_key``) and its
    nonce and url; this checks the inner JWS. Whether the new key already belongs to another
    account of the profile is the caller's question (a database one).
    """
    if outer.payload == b"":
        raise _malformed("key-change: the payload must be the inner JWS")
    inner = _parse_object(_loads(outer.payload, "inner JWS"), "inner JWS")
    if inner.jwk is None:
        raise _malformed("key-change: the inner JWS must carry the new key as jwk, not kid")
    if inner.nonce is not None:
        raise _malformed("key-change: the inner JWS must not carry a nonce")
    verify_signature(inner, inner.jwk)
    if inner.url != outer.url:
        raise _malformed("key-change: the inner and outer url differ")
    change = inner.json()
    if change is None:
        raise _malformed("key-change: the inner payload must be a keyChange object")
    if change.get("account") != account_url:
        raise _malformed("key-change: account does not name the account that signed")
    if "oldKey" not in change or thumbprint(change["oldKey"]) != thumbprint(old_key):
        raise _malformed("key-change: oldKey is not the account's current key")
    if thumbprint(inner.jwk) == thumbprint(old_key):
        raise _malformed("key-change: the new key is the current key")
    return dict(inner.jwk)


def _parse_eab(eab: Any) -> tuple[str, dict[str, Any], bytes, bytes, bytes]:
    """(alg, header, payload, signing input, signature) of an externalAccountBinding."""
    what = "externalAccountBinding"
    protected_b64, payload_b64, signature, header, payload = _split(eab, what)
    alg = header.get("alg")
    if alg not in EAB_ALGORITHMS:
        raise _malformed(f"{what}: alg must be one of {', '.join(EAB_ALGORITHMS)}")
    if "nonce" in header:
        raise _malformed(f"{what} must not carry a nonce")
    if "jwk" in header:
        raise _malformed(f"{what} must not carry a jwk")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 255:
        raise _malformed(f"{what} needs the key identifier as kid")
    signing_input = f"{protected_b64}.{payload_b64}".encode("ascii")
    return alg, header, payload, signing_input, signature


def eab_key_id(eab: Any, *, url: str) -> str:
    """The EAB key id of an ``externalAccountBinding`` value, after its structural checks.

    ``url`` is the new-account URL the outer JWS was sent to; the binding must name it too.
    Call this first to find the key, then :func:`verify_eab` with its HMAC.
    """
    _, header, _, _, _ = _parse_eab(eab)
    if header.get("url") != url:
        raise _malformed("externalAccountBinding: url must be the new-account url")
    kid: str = header["kid"]
    return kid


def verify_eab(eab: Any, *, hmac_key: bytes, account_key: dict[str, Any]) -> None:
    """Check the binding's MAC with the operator-issued ``hmac_key``, and that it binds
    ``account_key`` (the new account's public key, compared by its public members).

    The MAC is the standard library's HMAC with a constant-time compare: jwcrypto would refuse
    HS384/HS512 with our 32-byte keys (RFC 7518's key-length rule), which clients may pick.
    """
    alg, _, payload, signing_input, signature = _parse_eab(eab)
    expected = hmac.new(hmac_key, signing_input, _EAB_HASH[alg]).digest()
    if not hmac.compare_digest(expected, signature):
        raise AcmeProblem("unauthorized", "externalAccountBinding MAC does not verify")
    bound = _loads(payload, "externalAccountBinding payload")
    if _canonical(bound, what="externalAccountBinding payload") != _canonical(account_key):
        raise AcmeProblem("unauthorized", "externalAccountBinding binds another account key")
