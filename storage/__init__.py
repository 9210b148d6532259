"""gradq storage: SQLAlchemy 2.x models, queries by noun, migrations; import from the modules."""
