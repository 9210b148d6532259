"""gradq control: the Typer CLI that drives storage and the worker queue."""
