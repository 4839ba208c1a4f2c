"""Compliance policy rules domain."""
