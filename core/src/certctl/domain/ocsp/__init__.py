"""The RFC 6960 OCSP responder: delegated responder certificates, status lookup and caching."""
