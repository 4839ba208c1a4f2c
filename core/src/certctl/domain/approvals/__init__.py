"""Two-person approvals domain."""
