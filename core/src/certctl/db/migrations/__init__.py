"""Alembic migrations, run by :func:`certctl.db.migrate.migrate`."""
