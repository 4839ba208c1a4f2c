"""Browser sessions: signed cookies, CSRF, signing keys, the sessions API and logout."""
