"""gradq worker: the pure NumPy training core, data loading, and the Celery tasks that adapt them."""
