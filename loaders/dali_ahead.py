"""DALI's cross-epoch prefetch: the next pass's pipeline is built and running before this pass
ends, instead of a cold rebuild at the epoch start (loaders/prefetch.py has the general rule).

A pipeline's source reads one pass's order (loaders/dali_source.py), so a new train epoch (a
new permutation) gets a new pipeline; its random-op seed comes from (seed, epoch, rank), so a pipeline built
early gives the same crops as one built at the epoch start. `Ahead` keeps one `Run` per pass:

  - the pass being read: its pipeline and how many of its iterations are scheduled;
  - the next pass (prefetch.following): started once the current pass has scheduled its last
    iteration, i.e. spec.prefetch batches before its end. Train: a new pipeline for the next
    epoch, with its first min(len, prefetch) iterations scheduled at once (its own queue).
    Val (a pass that started at batch 0): the same pipeline, whose source wraps around to the
    pass's first batch; it takes one iteration for each batch the current pass
    hands out, so that no more than prefetch_queue_depth iterations are ever outstanding.

A pass that is not the one guessed (set_resolution at the boundary, a start_batch, the same
epoch read twice) drops the early pipeline and builds its own; so does a pass abandoned half-way
(its source stands mid-pass).
"""
from __future__ import annotations

import math

from .prefetch import Pass, following


class Run:
    """One pass's iterations on a pipeline: `total` of them, `scheduled` and `read` so far."""

    def __init__(self, pass_: Pass, pipe, total: int, prefetch: int, shared: bool):
        self.pass_, self.pipe, self.total = pass_, pipe, total
        self.depth, self.shared = max(1, prefetch), shared
        self.scheduled, self.read, self.next = 0, 0, None  # next: the following pass's Run, once started

    def schedule(self, k: int = 1) -> None:
        for _ in range(min(k, self.total - self.scheduled)):
            self.pipe.schedule_run()
            self.scheduled += 1


class Ahead:
    """The Runs of the pass being read and of the one after it (module docstring)."""

    def __init__(self, loader):
        self.loader = loader
        self.current: Run | None = None
        self.prefetched = 0  # passes that found their pipeline already running

    def _total(self, p: Pass) -> int:
        lo = self.loader
        return math.ceil(max(0, lo.num_samples - p.start * lo.spec.batch_size) / lo.spec.batch_size)

    def take(self, p: Pass) -> Run:
        """The Run for pass p (the one started early if it was built for p, else a new one),
        its first iterations scheduled."""
        cur = self.current
        nxt = cur.next if cur is not None else None
        if nxt is not None and nxt.pass_ == p:
            self.prefetched += 1
        else:
            self.drop()
            nxt = Run(p, self.loader._build(p), self._total(p), self.loader.spec.prefetch, shared=False)
        self.current = cur = nxt
        cur.schedule(cur.depth - cur.scheduled)  # a shared queue holds at most depth
        if cur.scheduled == cur.total:
            self._start_next()
        return cur

    def _start_next(self) -> None:
        cur, lo = self.current, self.loader
        p = following(lo, cur.pass_)
        if not lo.shuffle and cur.pass_.start == 0 and p == cur.pass_:
            cur.next = Run(p, cur.pipe, self._total(p), lo.spec.prefetch, shared=True)
            cur.next.schedule(cur.depth - (cur.scheduled - cur.read))  # the queue's free slots
        else:
            cur.next = Run(p, lo._build(p), self._total(p), lo.spec.prefetch, shared=False)
            cur.next.schedule(cur.next.depth)  # its own queue: fill it now

    def consumed(self) -> None:
        """One batch of the current pass handed out: one more iteration, of this pass or the next."""
        cur = self.current
        cur.read += 1
        if cur.scheduled < cur.total:
            cur.schedule(1)
            if cur.scheduled == cur.total:
                self._start_next()
        elif cur.next is not None and cur.next.shared and cur.next.scheduled < cur.next.depth:
            cur.next.schedule(1)

    def finish(self, whole: bool) -> None:
        if not whole:  # the source stands mid-pass: nothing in flight can be used
            self.drop()

    def drop(self) -> None:
        self.current = None  # DALI frees a pipeline's threads and buffers with it
