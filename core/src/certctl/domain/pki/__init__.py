"""Public PKI artefacts beside CRL and OCSP: the issuing CA certificates that AIA points to."""
