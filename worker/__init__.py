"""gradq worker: the pure NumPy core, data loading, and the Celery tasks that adapt them."""
