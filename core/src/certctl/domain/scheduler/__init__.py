"""``/api/v1/scheduler``: the named loops, the replicas that run them, and which one leads."""
