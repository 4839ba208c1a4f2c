"""The daily digest: a summary of the certificate estate sent to chosen notifiers."""
