"""The EST server (RFC 7030, RFC 9266 channel binding), one URL label per certificate profile."""
