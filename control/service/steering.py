"""Steering work already stored: pause, cancel, resume, prune; tags, notes and deletion."""

from __future__ import annotations

from dataclasses import dataclass

from control.service.base import Base
from storage import bookkeeping, retention, runs, stages
from storage.db import session_scope
from storage.stages import Requested


@dataclass(frozen=True)
class Resumed:
    """Paused stages queued again, and those sent to the workers."""

    resumed: list[int]
    sent: list[int]


class Steering(Base):
    def pause(self, run_id: int | None = None, stage_id: int | None = None) -> Requested:
        """Pause a run or a stage: queued ones now, a running one at its next heartbeat
        with a snapshot; one whose worker is gone (no heartbeat for the lease grace) now."""
        with session_scope(self.engine()) as s:
            return stages.request_pause(
                s, run_id=run_id, stage_id=stage_id, grace_seconds=self.settings.lease_grace
            )

    def cancel(self, run_id: int | None = None, stage_id: int | None = None) -> Requested:
        """Cancel a run, or a stage and the stages after it, as `pause` stops them."""
        with session_scope(self.engine()) as s:
            return stages.request_cancel(
                s, run_id=run_id, stage_id=stage_id, grace_seconds=self.settings.lease_grace
            )

    def resume(self, run_id: int | None = None, stage_id: int | None = None) -> Resumed:
        """Queue a paused run or stage again and send it to the workers."""
        self.check_broker()
        with session_scope(self.engine()) as s:
            if run_id is not None:
                runs.get_run(s, run_id)  # an unknown run is NotFound, not an empty answer
            queued = stages.resume(s, run_id=run_id, stage_id=stage_id)
            owner = stages.get_stage(s, queued[0]).run_id if queued else None
        return Resumed(queued, self.enqueue(owner) if owner is not None else [])

    def prune(
        self,
        run_id: int,
        keep_last: int = 5,
        every: int | None = None,
        keep_best: bool = True,
        dry_run: bool = False,
    ) -> list[int]:
        """Delete the run's snapshots outside the policy; returns their iterations."""
        with session_scope(self.engine()) as s:
            doomed = retention.apply_retention(
                s, run_id, keep_last=keep_last, every=every, keep_best=keep_best
            )
            if dry_run:
                s.rollback()
            return [d.iteration for d in doomed]

    def tag(self, run_id: int, add: list[str] = (), remove: list[str] = ()) -> list[str]:
        """Add and remove tags on a run; returns its tags after."""
        with session_scope(self.engine()) as s:
            bookkeeping.tag(s, run_id, list(add))
            return bookkeeping.tag(s, run_id, list(remove), remove=True)

    def note(self, run_id: int, text: str) -> int:
        """Keep a note on a run; returns its id."""
        with session_scope(self.engine()) as s:
            return bookkeeping.add_note(s, run_id, text)

    def rm(self, run_id: int) -> int:
        """Delete a run with its stages, curve and snapshots; returns the snapshots freed."""
        with session_scope(self.engine()) as s:
            return bookkeeping.delete_run(s, run_id)
