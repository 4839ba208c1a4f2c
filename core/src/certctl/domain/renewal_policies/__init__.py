"""Renewal policies: renewal timing with jitter, and the routing of expiry alerts."""
