"""The ACME server (RFC 8555, RFC 9773 renewal information), one directory per profile."""
