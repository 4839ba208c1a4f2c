"""Federated users: people who sign in through an identity provider or break-glass."""
