"""What the CLI asks of stages (cancel, pause, resume): kept here for old imports; the state
machine, requests included, lives in storage.stages."""

from storage.stages import WAITING, Requested, request_cancel, request_pause, resume

__all__ = ["WAITING", "Requested", "request_cancel", "request_pause", "resume"]
