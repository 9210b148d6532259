"""gradq storage: SQLAlchemy models, one session scope, query helpers and Alembic migrations."""
