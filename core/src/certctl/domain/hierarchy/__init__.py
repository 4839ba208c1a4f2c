"""The CA hierarchy of Local CA issuers: intermediates, issuing CAs and their retirement."""
