"""DALI's cross-epoch prefetch: one pipeline per resolution, always `depth` iterations ahead.

A pipeline's work is what its Feed hands it (loaders/dali_source.py): the batches of a plan of
passes, this pass's and then the guessed next pass's (loaders/prefetch.following). Nothing in a
batch depends on the pipeline (order: seed + epoch; crops: seed + epoch + index, computed by
the Feed), so the same pipeline serves every pass at its resolution and the first batches of
the next pass decode while this one ends: no per-epoch build, first run or teardown (on the
CPU they cost 12-20 ms, 50-100 ms and 140-175 ms an epoch when each pass had its own pipeline).

`Stream.begin(p)` makes the next batch read be pass p's first. When the batches in flight are
not p's (set_epoch(e, start_batch=k), the same epoch read twice, a pass abandoned half-way) they
are read and dropped (at most `depth` batches of decode wasted) and the plan restarts at p; a
new resolution (set_resolution at the boundary) builds that resolution's pipeline instead.
"""
from __future__ import annotations

import math

from .dali_source import Feed, Item
from .prefetch import Pass


class Stream:
    """The pipeline of the current resolution, its Feed, and what is in flight on it."""

    def __init__(self, loader):
        self.loader = loader
        self.depth = max(1, loader.spec.prefetch)
        self.pipe, self.feed, self.res = None, None, None
        self.prefetched = 0  # passes whose first batch was already in flight

    def total(self, p: Pass) -> int:
        lo = self.loader
        return math.ceil(max(0, lo.num_samples - p.start * lo.spec.batch_size) / lo.spec.batch_size)

    def begin(self, p: Pass, discard) -> None:
        """Position the stream at pass p's first batch; `discard(stream)` reads and drops
        whatever else is in flight (the caller's DaliGuard listens to its decoder messages)."""
        if self.pipe is not None and self.res != p.res:
            discard(self)
            self.drop()
        if self.pipe is None:
            self.feed = Feed(self.loader, self.loader.split == "train")
            self.pipe, self.res = self.loader._build(p.res, self.feed), p.res
        head = self.feed.inflight[0] if self.feed.inflight else None
        if head is not None and head.pass_ == p and head.batch == 0:
            self.prefetched += 1
        else:
            discard(self)
            self.feed.start(p)
        self.fill()

    def fill(self) -> None:
        """Schedule iterations until `depth` are in flight (a fresh pipeline's first
        schedule_run runs prefetch_queue_depth of them at once)."""
        if self.loader.num_samples == 0:
            return
        while len(self.feed.inflight) < self.depth:
            self.pipe.schedule_run()

    def head(self) -> Item:
        return self.feed.inflight[0]

    def release(self) -> Item:
        """Give the head batch's buffers back to DALI and schedule one more iteration."""
        self.pipe.release_outputs()
        item = self.feed.inflight.popleft()
        self.fill()
        return item

    def skip_inflight(self) -> list[Item]:
        """Read and drop every batch in flight (nothing new scheduled); the items dropped."""
        dropped = []
        while self.feed is not None and self.feed.inflight:
            self.pipe.share_outputs()
            self.pipe.release_outputs()
            dropped.append(self.feed.inflight.popleft())
        return dropped

    def drop(self) -> None:
        """Forget the pipeline (DALI frees its threads and buffers with it)."""
        self.pipe, self.feed, self.res = None, None, None
