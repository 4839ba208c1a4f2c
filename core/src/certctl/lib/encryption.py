"""Encryption at rest for connector configuration and other stored secrets.

A :class:`SecretBox` is built from the operator's passphrase (``CERTCTL_CONFIG_ENCRYPTION_KEY``)
and turns bytes into a self-describing text blob that fits a TEXT or JSON column::

    "v1:" + base64url_nopad(salt[16] || nonce[12] || ciphertext || tag[16])

- **KDF**: PBKDF2-HMAC-SHA256, 600,000 iterations (OWASP's 2023 figure and the Go certctl's v3
  setting), 16-byte random salt, 32-byte key.
- **Cipher**: AES-256-GCM with a random 96-bit nonce; the 16-byte tag ends the ciphertext.
- **Associated data**: ``b"v1:" + context.encode()``. The caller passes a context naming the row
  and column (``"issuer:<id>:config"``), so a ciphertext copied into another row, or read as
  another field, fails authentication instead of decrypting into the wrong place.
- **Encoding**: URL-safe base64 without padding, and only the canonical encoding is accepted, so
  a blob has exactly one spelling.

The layout follows the Go certctl's v3 blob (salt, nonce, ciphertext) but is not byte-compatible
with it: it is text, versioned by a prefix instead of a magic byte, and binds a context as AAD.

**Key caching.** 600k PBKDF2 rounds cost about 0.2 s, which the server cannot pay per row.
Decryption caches derived keys per salt in a bounded LRU, so reading the same row again derives
nothing. Encryption still uses a random salt per *key*, not per call: a box derives one
``(salt, key)`` pair and reuses it for up to 100,000 encryptions or one hour, then draws a new salt.
Nonces stay random per message, so each key sees at most 100,000 random 96-bit nonces, far below
the 2**32 messages NIST SP 800-38D allows per key (collision odds about 2**-77).

Both operations are CPU-bound for ~0.2 s when a key must be derived: call them from async code
through ``asyncio.to_thread``. A box is safe to share between threads.
"""

from __future__ import annotations

import base64
import binascii
import collections
import os
import re
import threading
import time
from collections.abc import Callable
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

__all__ = [
    "FORMAT_VERSION",
    "MAX_ENCRYPTIONS_PER_KEY",
    "MAX_KEY_AGE_SECONDS",
    "MIN_PASSPHRASE_LENGTH",
    "PBKDF2_ITERATIONS",
    "DecryptionError",
    "SecretBox",
    "derive_key",
    "is_encrypted",
]

FORMAT_VERSION = "v1"
PBKDF2_ITERATIONS = 600_000
MIN_PASSPHRASE_LENGTH = 16
MAX_ENCRYPTIONS_PER_KEY = 100_000
MAX_KEY_AGE_SECONDS = 3600.0

SALT_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32

_PREFIX = FORMAT_VERSION + ":"
_MIN_RAW_SIZE = SALT_SIZE + NONCE_SIZE + TAG_SIZE
_BODY = re.compile(r"[A-Za-z0-9_-]+")
_VERSION = re.compile(r"v[0-9]{1,3}")


class DecryptionError(Exception):
    """A blob could not be decrypted: wrong key, wrong context, tampering or not a blob.

    The message never contains the key, the plaintext or the blob itself (a value stored
    unencrypted by mistake may be a secret).
    """


def derive_key(passphrase: bytes, salt: bytes) -> bytes:
    """PBKDF2-HMAC-SHA256 with :data:`PBKDF2_ITERATIONS` rounds → a 32-byte AES key."""
    kdf = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=KEY_SIZE, salt=salt, iterations=PBKDF2_ITERATIONS
    )
    return kdf.derive(passphrase)


def is_encrypted(value: str) -> bool:
    """Whether ``value`` is shaped like a blob this module writes (it is not decrypted)."""
    if not value.startswith(_PREFIX):
        return False
    raw = _decode_body(value[len(_PREFIX) :])
    return raw is not None and len(raw) >= _MIN_RAW_SIZE


def _decode_body(body: str) -> bytes | None:
    """Decode canonical unpadded base64url, or None for anything else."""
    if _BODY.fullmatch(body) is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return None
    if _encode_body(raw) != body:  # unused trailing bits set: not the canonical spelling
        return None
    return raw


def _encode_body(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _associated_data(context: str) -> bytes:
    if not isinstance(context, str) or not context:
        raise ValueError("context must be a non-empty string naming where the value is stored")
    return (_PREFIX + context).encode("utf-8")


class _WriteKey:
    """The salt and key encryptions currently share, with their use count and birth time."""

    __slots__ = ("born", "key", "salt", "uses")

    def __init__(self, salt: bytes, key: bytes, born: float) -> None:
        self.salt = salt
        self.key = key
        self.born = born
        self.uses = 0


class SecretBox:
    """Encrypts and decrypts values with a key derived from the operator's passphrase."""

    __slots__ = ("_cache", "_cache_size", "_clock", "_lock", "_passphrase", "_write_key")

    def __init__(
        self,
        passphrase: str,
        *,
        cache_size: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Refuse short passphrases: the KDF slows guessing but cannot save a weak secret.

        ``clock`` (seconds, monotonic) is injectable so tests can age the encryption key.
        """
        if not isinstance(passphrase, str) or len(passphrase) < MIN_PASSPHRASE_LENGTH:
            raise ValueError(
                "the encryption passphrase (CERTCTL_CONFIG_ENCRYPTION_KEY) must be at least "
                f"{MIN_PASSPHRASE_LENGTH} characters"
            )
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._passphrase = passphrase.encode("utf-8")
        self._cache: collections.OrderedDict[bytes, bytes] = collections.OrderedDict()
        self._cache_size = cache_size
        self._clock = clock
        self._lock = threading.Lock()
        self._write_key: _WriteKey | None = None

    def __repr__(self) -> str:
        return "SecretBox(<passphrase hidden>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretBox cannot be pickled")

    def encrypt(self, plaintext: bytes, context: str) -> str:
        """Encrypt ``plaintext`` for storage at ``context``; returns a ``"v1:..."`` blob."""
        if not isinstance(plaintext, bytes | bytearray | memoryview):
            raise TypeError("plaintext must be bytes; encode text first")
        aad = _associated_data(context)
        salt, key = self._current_write_key()
        nonce = os.urandom(NONCE_SIZE)
        sealed = AESGCM(key).encrypt(nonce, bytes(plaintext), aad)
        return _PREFIX + _encode_body(salt + nonce + sealed)

    def decrypt(self, blob: str, context: str) -> bytes:
        """Decrypt a blob written by :meth:`encrypt` for the same ``context``.

        Raises:
            DecryptionError: wrong key or context, tampered or truncated blob, unknown version.
        """
        aad = _associated_data(context)
        if not isinstance(blob, str):
            raise DecryptionError("an encrypted value must be a string")
        version, sep, body = blob.partition(":")
        if not sep or version != FORMAT_VERSION:
            shown = f" {version!r}" if sep and _VERSION.fullmatch(version) else ""
            raise DecryptionError(f"not an encrypted value (unsupported format{shown})")
        raw = _decode_body(body)
        if raw is None or len(raw) < _MIN_RAW_SIZE:
            raise DecryptionError("malformed encrypted value")
        salt = raw[:SALT_SIZE]
        nonce = raw[SALT_SIZE : SALT_SIZE + NONCE_SIZE]
        sealed = raw[SALT_SIZE + NONCE_SIZE :]
        try:
            return AESGCM(self._key_for_salt(salt)).decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise DecryptionError(
                f"cannot decrypt the value stored for {context!r}: wrong encryption key, "
                "value moved from elsewhere, or tampered data"
            ) from None

    def _key_for_salt(self, salt: bytes) -> bytes:
        """Return the key for ``salt``, deriving it at most once while it stays in the LRU."""
        with self._lock:
            key = self._cache.get(salt)
            if key is not None:
                self._cache.move_to_end(salt)
                return key
        # Derive outside the lock: 0.2 s of PBKDF2 must not stall other threads' cache hits.
        key = derive_key(self._passphrase, salt)
        self._remember(salt, key)
        return key

    def _remember(self, salt: bytes, key: bytes) -> None:
        with self._lock:
            self._cache[salt] = key
            self._cache.move_to_end(salt)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _current_write_key(self) -> tuple[bytes, bytes]:
        """The shared (salt, key) for encryption, rotated by use count and age."""
        with self._lock:
            current = self._write_key
            now = self._clock()
            if (
                current is None
                or current.uses >= MAX_ENCRYPTIONS_PER_KEY
                or now - current.born >= MAX_KEY_AGE_SECONDS
            ):
                # Held under the lock on purpose: concurrent writers wait for one derivation
                # instead of each deriving (and discarding) their own.
                salt = os.urandom(SALT_SIZE)
                current = _WriteKey(salt, derive_key(self._passphrase, salt), now)
                self._write_key = current
                fresh = True
            else:
                fresh = False
            current.uses += 1
            salt, key = current.salt, current.key
        if fresh:
            self._remember(salt, key)  # our own new blobs decrypt without deriving again
        return salt, key
