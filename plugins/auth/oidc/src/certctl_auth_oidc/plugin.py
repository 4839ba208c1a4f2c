"""Plugin entry point (hook implementations are added with the provider)."""
