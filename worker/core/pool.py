"""Threads that compute a batch's row blocks, each BLAS call on one thread, so results never
depend on how many threads there are.

OpenBLAS splits a product differently for each thread count, and the order of a float sum
decides its last bits. Here every block's products run on one BLAS thread, whichever thread of
the pool runs them, and the caller sums the block results in block order: the bits are fixed by
the block decomposition alone, and the thread count only decides how fast they arrive.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from types import TracebackType
from typing import TypeVar

from threadpoolctl import ThreadpoolController

from worker.errors import WorkerInputError

T = TypeVar("T")
R = TypeVar("R")


@cache
def _blas() -> ThreadpoolController:
    """The process's BLAS libraries, found once (a scan of loaded libraries takes ~0.5 ms)."""
    return ThreadpoolController().select(user_api="blas")


def blas_threads() -> int:
    """The BLAS thread limit in force: what GRADQ_THREADS or threadpool_limits asked for."""
    return max((lib["num_threads"] for lib in _blas().info()), default=1)


class Pool:
    """`threads` threads computing blocks; while open, BLAS runs every call on one thread."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = blas_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise WorkerInputError(f"threads {threads} must be at least 1")
        self._executor: ThreadPoolExecutor | None = None
        self._limit = None

    def __enter__(self) -> Pool:
        self._limit = _blas().limit(limits=1)
        if self.threads > 1:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="gradq-core")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)  # an error mid-step drops the rest
            self._executor = None
        if self._limit is not None:
            self._limit.restore_original_limits()
            self._limit = None

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """fn over items, results in the items' order; each call sees the caller's errstate."""
        assert self._limit is not None, "use the pool inside `with`"
        if self._executor is None or len(items) < 2:
            return map(fn, items)
        contexts = [contextvars.copy_context() for _ in items]  # one each: a context runs once
        return self._executor.map(lambda c, item: c.run(fn, item), contexts, items)


@contextmanager
def using(pool: Pool | None) -> Iterator[Pool]:
    """The caller's open pool, left open; or, if it passed none, a one-thread pool for the call."""
    if pool is not None:
        yield pool
        return
    with Pool(1) as own:
        yield own
