"""Storage: SQLAlchemy 2 async models, engine factory and migrations."""
