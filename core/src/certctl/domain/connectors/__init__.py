"""Connectors domain."""
