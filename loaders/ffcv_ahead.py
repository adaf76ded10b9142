"""FFCV's cross-epoch prefetch and its warm start (loaders/prefetch.py has the general rule).

FFCV runs each epoch in an `EpochIterator`: a producer thread, started when the iterator is
made, that runs the compiled pipeline batches_ahead batches ahead of the consumer and stops at
the epoch's end. `Epochs` starts the next pass's iterator as soon as the current one's producer
has produced its last batch (its thread has ended): the next epoch's first batches decode while
the consumer reads this epoch's last ones, and never two producers run the pipeline at once.
Each iterator has its own batch buffers, so the current epoch's batches stay valid.

The first iterator is started at construction and waited on until its first batch is ready
(`warm`): numba compiles the pipeline on that batch (5-8 s here), which then falls in the
loader's construction, outside any measured window (accuracy mode's first epoch included).

A pass that is not the one guessed (set_resolution: the decoder allocates its output size per
iterator; a start_batch; the same epoch twice) stops the early iterator and starts its own; so
does an abandoned pass. With os_cache=False FFCV's page reader is shared by the iterators'
memory contexts, so there the next iterator starts only when the pass does (no overlap).
"""
from __future__ import annotations

import queue
import time

from .prefetch import Pass, following


def stop(it) -> None:
    """Stop an EpochIterator's producer and wait for it: FFCV's close() alone lets it run on
    until its queue is full (it checks the flag only then) and then sleep out a 0.5 s timeout."""
    it.close()
    it.iter_ixes = iter(())  # the producer's next batch is its last: it puts the end marker
    while it.is_alive():
        try:
            if it.output_queue.get(timeout=0.05) is None:
                break
        except queue.Empty:
            pass
    it.join()


class Epochs:
    """The EpochIterator of the pass being read and the one started for the pass after it."""

    def __init__(self, loader, start, overlap: bool):
        self.loader, self.start, self.overlap = loader, start, overlap  # start(pass) -> EpochIterator
        self.ahead = None  # (Pass, EpochIterator)
        self.prefetched, self.warmed = 0, False

    def warm(self, p: Pass) -> float:
        """Start pass p now and wait for its first batch (the JIT compile); seconds waited."""
        t0 = time.perf_counter()
        self.ahead = (p, self.start(p))
        self.warmed = True  # not counted as a prefetched pass
        it = self.ahead[1]
        while it.output_queue.empty() and it.is_alive():
            time.sleep(0.005)
        return time.perf_counter() - t0

    def take(self, p: Pass):
        if self.ahead is not None and self.ahead[0] == p:
            it, self.ahead = self.ahead[1], None
            self.prefetched += not self.warmed
            self.warmed = False
            return it
        self.drop()
        self.warmed = False
        return self.start(p)

    def after_batch(self, p: Pass, it, last: bool) -> None:
        """Called after each batch of pass p is taken: start the next pass once p's producer is done."""
        if self.ahead is not None or not self.overlap:
            return
        if last:
            it.join()  # it has produced everything; only its end marker is left to put
        if not it.is_alive():
            q = following(self.loader, p)
            self.ahead = (q, self.start(q))

    def drop(self) -> None:
        if self.ahead is not None:
            stop(self.ahead[1])
            self.ahead = None

