"""RFC 9266 ``tls-exporter`` channel binding for Python's own TLS connections.

EST (RFC 7030 §3.5 as updated by RFC 9266) binds an enrollment to the TLS connection that
carried it: the client puts the value exported with label ``EXPORTER-Channel-Binding`` (empty
context, 32 bytes) into its CSR, and the server compares it with its own side of the same
connection. Python's :mod:`ssl` has no binding to ``SSL_export_keying_material``, and the server
runs on the standard library's TLS (uvicorn), so this module calls that one OpenSSL function of
the very library ``_ssl`` is linked against, through :mod:`ctypes`, on the connection's ``SSL*``.

Reaching the ``SSL*`` relies on CPython's object layout (``PySSLSocket``: the object header,
a weak reference to the socket, then the pointer); every use is checked first by asking
OpenSSL for the connection's protocol version and role and comparing them with what Python
reports. If anything disagrees, or the platform is not CPython, :func:`channel_binding` returns
None: the caller treats that as "no binding available", never as a match.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import platform
import ssl
from pathlib import Path
from typing import Any

__all__ = ["EXPORTER_LABEL", "channel_binding"]

EXPORTER_LABEL = b"EXPORTER-Channel-Binding"
BINDING_LENGTH = 32

_log = logging.getLogger("certctl.tls")
_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@functools.cache
def _libssl() -> ctypes.CDLL | None:
    """The libssl already mapped into this process by ``_ssl`` (found through /proc/self/maps)."""
    if platform.python_implementation() != "CPython":
        return None
    import _ssl  # noqa: F401 - make sure the library is mapped

    try:
        with Path("/proc/self/maps").open(encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "libssl" in line and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if not hasattr(lib, "SSL_export_keying_material"):
            continue
        lib.SSL_export_keying_material.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_int,
        ]
        lib.SSL_export_keying_material.restype = ctypes.c_int
        lib.SSL_version.argtypes = [ctypes.c_void_p]
        lib.SSL_version.restype = ctypes.c_int
        lib.SSL_is_server.argtypes = [ctypes.c_void_p]
        lib.SSL_is_server.restype = ctypes.c_int
        return lib
    _log.warning("tls-exporter channel binding unavailable: libssl not found in this process")
    return None


def _ssl_pointer(ssl_object: Any, lib: ctypes.CDLL) -> int | None:
    inner = getattr(ssl_object, "_sslobj", ssl_object)
    if type(inner).__name__ != "_SSLSocket":
        return None
    # PySSLSocket: PyObject_HEAD, PyObject *Socket, SSL *ssl.
    offset = object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p)
    pointer = ctypes.c_void_p.from_address(id(inner) + offset).value
    if not pointer:
        return None
    expected_version = _VERSIONS.get(str(ssl_object.version()))
    is_server = 1 if ssl_object.server_side else 0
    if lib.SSL_version(pointer) != expected_version or lib.SSL_is_server(pointer) != is_server:
        _log.warning("tls-exporter channel binding unavailable: unexpected ssl object layout")
        return None
    return pointer


def channel_binding(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> bytes | None:
    """This connection's ``tls-exporter`` value, or None when it cannot be obtained safely."""
    lib = _libssl()
    if lib is None:
        return None
    pointer = _ssl_pointer(ssl_object, lib)
    if pointer is None:
        return None
    out = ctypes.create_string_buffer(BINDING_LENGTH)
    ok = lib.SSL_export_keying_material(
        pointer, out, BINDING_LENGTH, EXPORTER_LABEL, len(EXPORTER_LABEL), None, 0, 0
    )
    return out.raw if ok == 1 else None
