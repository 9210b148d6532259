"""The reaper module around the runner, in this process: fork safety of its transaction."""

from __future__ import annotations

import os
import threading

from sqlalchemy import text

from storage import migrate
from storage.db import make_engine, session_scope
from worker import reaping


def test_a_pool_process_forked_during_the_reapers_write_can_write(tmp_path):
    url = f"sqlite:///{tmp_path / 'gradq.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    reaping.guard_forks()  # as the worker's main process does when it starts its reaper
    writing, forked = threading.Event(), threading.Event()

    def reaper() -> None:
        with reaping.reaper_session(engine) as s:
            s.execute(text("UPDATE gradq_meta SET value = value"))
            writing.set()
            forked.wait(1.0)  # a fork now would copy the write lock's in-process state

    thread = threading.Thread(target=reaper)
    thread.start()
    writing.wait()
    pid = os.fork()  # waits for the reaper's transaction to end
    if pid == 0:  # the pool process: a fresh engine must be able to write
        code = 1
        try:
            child = make_engine(url, connect_args={"timeout": 5})
            with session_scope(child) as s:
                s.execute(text("UPDATE gradq_meta SET value = value"))
            code = 0
        finally:
            os._exit(code)
    forked.set()
    _, status = os.waitpid(pid, 0)
    thread.join()
    engine.dispose()
    assert os.waitstatus_to_exitcode(status) == 0  # not "database is locked"
