"""Alembic environment: always driven by certctl.db.migrate with a live connection."""

from __future__ import annotations

from alembic import context

import certctl.db.models  # noqa: F401 - registers every table on the metadata
from certctl.db.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `certctl migrate`, which supplies the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
