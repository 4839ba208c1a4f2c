"""SecretBox: the v1 blob format, authentication failures, and derived-key caching."""

from __future__ import annotations

import base64
import hashlib
import pickle
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from certctl.lib import encryption
from certctl.lib.encryption import (
    MAX_ENCRYPTIONS_PER_KEY,
    MAX_KEY_AGE_SECONDS,
    PBKDF2_ITERATIONS,
    DecryptionError,
    SecretBox,
    is_encrypted,
)

PASSPHRASE = "correct horse battery staple 42"
OTHER_PASSPHRASE = "incorrect horse battery staple 43"
CONTEXT = "issuer:iss-123:config"
SECRET = b'{"api_token": "s3cr3t-t0ken-value"}'


class CountingKdf:
    """Stands in for derive_key: counts derivations per salt and is fast (1 PBKDF2 round)."""

    def __init__(self) -> None:
        self.salts: list[bytes] = []

    def __call__(self, passphrase: bytes, salt: bytes) -> bytes:
        self.salts.append(salt)
        return hashlib.pbkdf2_hmac("sha256", passphrase, salt, 1, 32)


@pytest.fixture
def kdf(monkeypatch: pytest.MonkeyPatch) -> CountingKdf:
    counting = CountingKdf()
    monkeypatch.setattr(encryption, "derive_key", counting)
    return counting


def unpack(blob: str) -> tuple[bytes, bytes, bytes]:
    """Split a v1 blob into (salt, nonce, ciphertext+tag), as the module docstring documents."""
    prefix, _, body = blob.partition(":")
    assert prefix == "v1"
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    return raw[:16], raw[16:28], raw[28:]


def pack(salt: bytes, nonce: bytes, sealed: bytes) -> str:
    return "v1:" + base64.urlsafe_b64encode(salt + nonce + sealed).rstrip(b"=").decode()


def test_format_is_documented_layout_with_600k_pbkdf2() -> None:
    """Decrypt independently of SecretBox, so the on-disk format cannot drift unnoticed."""
    blob = SecretBox(PASSPHRASE).encrypt(SECRET, CONTEXT)

    assert blob.startswith("v1:")
    assert "=" not in blob
    salt, nonce, sealed = unpack(blob)
    assert len(salt) == 16
    assert len(nonce) == 12
    assert len(sealed) == len(SECRET) + 16
    assert PBKDF2_ITERATIONS == 600_000
    key = hashlib.pbkdf2_hmac("sha256", PASSPHRASE.encode(), salt, 600_000, 32)
    assert AESGCM(key).decrypt(nonce, sealed, b"v1:" + CONTEXT.encode()) == SECRET


def test_real_kdf_round_trip_derives_once_per_box() -> None:
    box = SecretBox(PASSPHRASE)
    assert box.decrypt(box.encrypt(SECRET, CONTEXT), CONTEXT) == SECRET


@pytest.mark.parametrize("plaintext", [b"", b"x", SECRET, bytes(range(256)) * 64])
def test_round_trip(kdf: CountingKdf, plaintext: bytes) -> None:
    box = SecretBox(PASSPHRASE)
    blob = box.encrypt(plaintext, CONTEXT)
    assert box.decrypt(blob, CONTEXT) == plaintext
    assert SecretBox(PASSPHRASE).decrypt(blob, CONTEXT) == plaintext
    assert is_encrypted(blob)


def test_unicode_context_round_trips(kdf: CountingKdf) -> None:
    box = SecretBox(PASSPHRASE)
    context = "target:tgt-ü:config"
    assert box.decrypt(box.encrypt(b"v", context), context) == b"v"


def test_same_plaintext_encrypts_differently(kdf: CountingKdf) -> None:
    box = SecretBox(PASSPHRASE)
    first, second = box.encrypt(SECRET, CONTEXT), box.encrypt(SECRET, CONTEXT)
    assert first != second
    assert unpack(first)[1] != unpack(second)[1]  # fresh nonce each time
    other_box = SecretBox(PASSPHRASE).encrypt(SECRET, CONTEXT)
    assert unpack(other_box)[0] != unpack(first)[0]  # and a fresh salt per box


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s, n, c: (_flip(s, 0), n, c), id="salt-first"),
        pytest.param(lambda s, n, c: (_flip(s, 15), n, c), id="salt-last"),
        pytest.param(lambda s, n, c: (s, _flip(n, 0), c), id="nonce-first"),
        pytest.param(lambda s, n, c: (s, _flip(n, 11), c), id="nonce-last"),
        pytest.param(lambda s, n, c: (s, n, _flip(c, 0)), id="ciphertext"),
        pytest.param(lambda s, n, c: (s, n, _flip(c, len(c) - 1)), id="tag"),
        pytest.param(lambda s, n, c: (s, n, c[:-1]), id="tag-truncated"),
        pytest.param(lambda s, n, c: (s, n, c + b"\x00"), id="extended"),
        pytest.param(lambda s, n, c: (s, n, c[16:]), id="ciphertext-dropped"),
    ],
)
def test_tampering_any_part_is_detected(
    kdf: CountingKdf, tamper: Callable[[bytes, bytes, bytes], tuple[bytes, bytes, bytes]]
) -> None:
    box = SecretBox(PASSPHRASE)
    blob = box.encrypt(SECRET, CONTEXT)
    tampered = pack(*tamper(*unpack(blob)))
    assert tampered != blob
    with pytest.raises(DecryptionError) as excinfo:
        box.decrypt(tampered, CONTEXT)
    assert excinfo.value.__cause__ is None


def test_every_single_character_change_is_detected(kdf: CountingKdf) -> None:
    """Including the last character, whose spare bits a lax base64 decoder would ignore."""
    box = SecretBox(PASSPHRASE)
    blob = box.encrypt(b"short", CONTEXT)
    for index in range(len(blob)):
        replacement = "A" if blob[index] != "A" else "B"
        changed = blob[:index] + replacement + blob[index + 1 :]
        with pytest.raises(DecryptionError):
            box.decrypt(changed, CONTEXT)


def test_non_canonical_base64_is_refused(kdf: CountingKdf) -> None:
    """Set a spare bit in the last character: a lax decoder reads the same bytes."""
    box = SecretBox(PASSPHRASE)
    blob = box.encrypt(b"short", CONTEXT)  # 49 raw bytes: the last character has 4 spare bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    assert alphabet.index(blob[-1]) % 16 == 0
    same_bytes = blob[:-1] + alphabet[alphabet.index(blob[-1]) + 1]
    assert unpack(same_bytes) == unpack(blob)
    with pytest.raises(DecryptionError, match="malformed"):
        box.decrypt(same_bytes, CONTEXT)
    assert not is_encrypted(same_bytes)


def test_wrong_key_is_a_decryption_error(kdf: CountingKdf) -> None:
    blob = SecretBox(PASSPHRASE).encrypt(SECRET, CONTEXT)
    with pytest.raises(DecryptionError) as excinfo:
        SecretBox(OTHER_PASSPHRASE).decrypt(blob, CONTEXT)
    message = str(excinfo.value)
    assert "wrong encryption key" in message
    for leaked in (PASSPHRASE, OTHER_PASSPHRASE, SECRET.decode(), blob):
        assert leaked not in message


def test_wrong_context_is_a_decryption_error(kdf: CountingKdf) -> None:
    box = SecretBox(PASSPHRASE)
    blob = box.encrypt(SECRET, "issuer:iss-1:config")
    for wrong in ("issuer:iss-2:config", "target:iss-1:config", "issuer:iss-1:config "):
        with pytest.raises(DecryptionError):
            box.decrypt(blob, wrong)


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        ("", "not an encrypted value"),
        ("plain text secret", "not an encrypted value"),
        ("v2:" + "A" * 80, "unsupported format 'v2'"),
        ("V1:" + "A" * 80, "not an encrypted value"),
        ("v1:", "malformed"),
        ("v1:" + "A" * 40, "malformed"),  # 30 bytes: shorter than salt + nonce + tag
        ("v1:" + "A" * 79 + "=", "malformed"),  # padding is not part of the format
        ("v1:" + "A" * 79 + "+", "malformed"),  # standard, not URL-safe, alphabet
        ("v1:" + "A" * 79 + "\n", "malformed"),
        ("v1:" + "A" * 81, "malformed"),  # impossible length for base64
    ],
)
def test_garbage_is_a_decryption_error(kdf: CountingKdf, blob: str, expected: str) -> None:
    with pytest.raises(DecryptionError, match=expected):
        SecretBox(PASSPHRASE).decrypt(blob, CONTEXT)
    assert not is_encrypted(blob)


def test_unknown_version_prefix_does_not_echo_the_value(kdf: CountingKdf) -> None:
    with pytest.raises(DecryptionError) as excinfo:
        SecretBox(PASSPHRASE).decrypt("hunter2hunter2:zzz", CONTEXT)
    assert "hunter2" not in str(excinfo.value)


def test_non_string_blob_is_a_decryption_error(kdf: CountingKdf) -> None:
    with pytest.raises(DecryptionError):
        SecretBox(PASSPHRASE).decrypt(b"v1:AAAA", CONTEXT)  # type: ignore[arg-type]


def test_second_decrypt_of_a_blob_does_not_derive_again(kdf: CountingKdf) -> None:
    blob = SecretBox(PASSPHRASE).encrypt(SECRET, CONTEXT)
    salt = unpack(blob)[0]
    assert kdf.salts == [salt]

    reader = SecretBox(PASSPHRASE)
    assert reader.decrypt(blob, CONTEXT) == SECRET
    assert reader.decrypt(blob, CONTEXT) == SECRET
    assert reader.decrypt(blob, CONTEXT) == SECRET
    assert kdf.salts == [salt, salt]  # writer once, reader once


def test_failed_decrypt_with_cached_key_does_not_derive_again(kdf: CountingKdf) -> None:
    box = SecretBox(PASSPHRASE)
    blob = box.encrypt(SECRET, CONTEXT)
    for _ in range(3):
        with pytest.raises(DecryptionError):
            box.decrypt(blob, "other:context")
    assert len(kdf.salts) == 1


def test_own_ciphertexts_decrypt_without_deriving(kdf: CountingKdf) -> None:
    box = SecretBox(PASSPHRASE)
    blobs = [box.encrypt(SECRET + bytes([i]), CONTEXT) for i in range(5)]
    assert [box.decrypt(b, CONTEXT) for b in blobs] == [SECRET + bytes([i]) for i in range(5)]
    assert len(kdf.salts) == 1


def test_encryption_key_rotates_after_max_uses(
    kdf: CountingKdf, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert 1_000 <= MAX_ENCRYPTIONS_PER_KEY <= 2**32  # NIST SP 800-38D random-nonce bound
    limit = 50
    monkeypatch.setattr(encryption, "MAX_ENCRYPTIONS_PER_KEY", limit)
    box = SecretBox(PASSPHRASE)
    blobs = [box.encrypt(b"x", CONTEXT) for _ in range(limit + 1)]
    salts = [unpack(b)[0] for b in blobs]
    assert len(set(salts[:limit])) == 1
    assert salts[-1] != salts[0]
    assert kdf.salts == [salts[0], salts[-1]]
    assert len({unpack(b)[1] for b in blobs}) == len(blobs)  # no nonce ever repeats


def test_encryption_key_rotates_after_max_age(kdf: CountingKdf) -> None:
    now = [1000.0]
    box = SecretBox(PASSPHRASE, clock=lambda: now[0])
    first = unpack(box.encrypt(b"x", CONTEXT))[0]
    now[0] += MAX_KEY_AGE_SECONDS - 1
    assert unpack(box.encrypt(b"x", CONTEXT))[0] == first
    now[0] += 1
    assert unpack(box.encrypt(b"x", CONTEXT))[0] != first
    assert len(kdf.salts) == 2


def test_key_cache_is_bounded_lru(kdf: CountingKdf) -> None:
    blobs = [SecretBox(PASSPHRASE).encrypt(bytes([i]), CONTEXT) for i in range(3)]
    kdf.salts.clear()
    reader = SecretBox(PASSPHRASE, cache_size=2)
    reader.decrypt(blobs[0], CONTEXT)
    reader.decrypt(blobs[1], CONTEXT)
    reader.decrypt(blobs[0], CONTEXT)  # hit; blobs[0] becomes most recent
    reader.decrypt(blobs[2], CONTEXT)  # evicts blobs[1]
    assert len(kdf.salts) == 3
    reader.decrypt(blobs[0], CONTEXT)  # still cached
    assert len(kdf.salts) == 3
    reader.decrypt(blobs[1], CONTEXT)  # evicted: derived again
    assert kdf.salts[-1] == unpack(blobs[1])[0]
    assert len(kdf.salts) == 4


@pytest.mark.parametrize("passphrase", ["", "x", "fifteen-chars!!"])
def test_short_passphrase_is_refused(passphrase: str) -> None:
    with pytest.raises(ValueError, match="at least 16 characters") as excinfo:
        SecretBox(passphrase)
    if passphrase:
        assert passphrase not in str(excinfo.value)


def test_sixteen_character_passphrase_is_accepted(kdf: CountingKdf) -> None:
    box = SecretBox("sixteen-chars!!!")
    assert box.decrypt(box.encrypt(b"ok", CONTEXT), CONTEXT) == b"ok"


def test_empty_context_is_refused(kdf: CountingKdf) -> None:
    box = SecretBox(PASSPHRASE)
    with pytest.raises(ValueError, match="context"):
        box.encrypt(SECRET, "")
    blob = box.encrypt(SECRET, CONTEXT)
    with pytest.raises(ValueError, match="context"):
        box.decrypt(blob, "")


def test_text_plaintext_is_refused(kdf: CountingKdf) -> None:
    with pytest.raises(TypeError, match="bytes"):
        SecretBox(PASSPHRASE).encrypt("text", CONTEXT)  # type: ignore[arg-type]


def test_box_never_shows_or_pickles_its_passphrase() -> None:
    box = SecretBox(PASSPHRASE)
    assert PASSPHRASE not in repr(box)
    assert PASSPHRASE not in str(box)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(box)


def test_is_encrypted(kdf: CountingKdf) -> None:
    blob = SecretBox(PASSPHRASE).encrypt(b"", CONTEXT)
    assert is_encrypted(blob)
    assert not is_encrypted(blob[:-1])
    assert not is_encrypted("v1:" + blob[3:-2])
    assert not is_encrypted("my-plaintext-password")
    assert not is_encrypted("v1:not base64!")
    assert not is_encrypted("")
