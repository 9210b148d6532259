"""gradq from Python: `from gradq import Client` (see control/client.py)."""

from control.client import ERRORS, Client, WaitTimeoutError

__all__ = ["ERRORS", "Client", "WaitTimeoutError"]
