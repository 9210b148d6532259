"""A worker's pool processes share the main process's heap instead of copying it."""

from __future__ import annotations

import gc

from celery import signals

from worker import tasks  # noqa: F401 - connects the signal handlers


def test_the_main_process_freezes_its_objects_before_forking_a_pool_process():
    gc.unfreeze()
    try:
        signals.worker_before_create_process.send(sender=None)
        assert gc.get_freeze_count() > 0  # the collector no longer writes to those pages
    finally:
        gc.unfreeze()
