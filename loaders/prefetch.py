"""Cross-epoch prefetch: the first batches of the next pass are in flight before this one ends.

Without it every epoch start waits for a whole batch from cold workers (issue 18: with 20-batch
epochs on the H200 the median step was at full speed but the mean 40% below it; on the CPU a
3-batch epoch ran at 0.72-0.77 of a long one). A loader that prefetches guesses the pass that
follows the one it is reading and starts on it as slots free up:

    following(p) = the next epoch from its first batch at the same resolution (train);
                   the same pass again (val: its order and pixels do not depend on the epoch).

The guess is checked when the next pass starts: a `Pass` is everything a pass's batches depend
on (epoch, resolution, first batch), and batches depend on nothing else (order: seed + epoch;
crops: seed + epoch + index), so a pass that equals the guess gets exactly the batches a cold
start would give. Any other pass (set_resolution at the boundary, a resumed start_batch, the same
epoch read twice) drops what was prefetched and starts cold: correct, only not faster.

`JobStream` is the generic engine (the torchvision thread pool); `chain` is the same sequence of
passes as one iterator (the DataLoader's sampler). DALI and FFCV keep one ahead object (the next
pipeline / epoch iterator) keyed by its Pass, with `following` as the guess.
"""
from __future__ import annotations

from collections import deque
from typing import Callable, Iterator, NamedTuple


class Pass(NamedTuple):
    epoch: int  # 0 for a loader that does not shuffle (val): its passes are all alike
    res: int
    start: int  # first batch (set_epoch(e, start_batch=k))


def requested(loader) -> Pass:
    """The pass the loader is asked for now; takes the one-pass start_batch (see base.Loader)."""
    start, loader.start_batch = loader.start_batch, 0
    return Pass(loader.epoch if loader.shuffle else 0, loader.res, start)


def following(loader, p: Pass) -> Pass:
    """The guess for the pass after p (module docstring)."""
    return Pass(p.epoch + 1 if loader.shuffle else p.epoch, p.res, 0)


def indices(loader, p: Pass) -> list[int]:
    """The sample indices pass p reads, in order: its epoch's order from its first batch on."""
    return loader.order(p.epoch)[p.start * loader.spec.batch_size:]


def batches(loader, p: Pass) -> list[list[int]]:
    """Pass p's batches as index lists (the last one short unless drop_last removed it)."""
    order, bs = indices(loader, p), loader.spec.batch_size
    return [order[i:i + bs] for i in range(0, len(order), bs)]


def chain(loader, p: Pass, items: Callable[[Pass], list]) -> Iterator[tuple[Pass, object]]:
    """(pass, item) for pass p's items, then following(p)'s, and so on (ends at an empty pass)."""
    while True:
        todo = items(p)
        if not todo:
            return
        for item in todo:
            yield p, item
        p = following(loader, p)


class JobStream:
    """Jobs of consecutive passes, `depth` in flight across pass boundaries.

    plan(p) -> the pass's work items; submit(p, item) -> a handle (the work starts);
    wait(handle) -> the batch; cancel(handle) drops it. `run(p)` yields pass p's batches in
    order; what it submitted for the passes after p stays in flight for the next run().
    """

    def __init__(self, loader, depth: int, plan, submit, wait, cancel):
        self.loader, self.depth = loader, max(1, depth)
        self.plan, self.submit, self.wait, self.cancel = plan, submit, wait, cancel
        self.pending: deque = deque()  # (pass, handle), oldest first
        self.frontier = None  # chain(...) from the pass at the head: the items not yet submitted
        self.head = None  # the pass whose batches come next out of `pending` / the frontier
        self.sizes: deque = deque()  # items per pass, for the passes the frontier has entered
        self.prefetched = 0  # passes that found their first batch already submitted

    def _items(self, p: Pass) -> list:
        todo = self.plan(p)
        self.sizes.append(len(todo))
        return todo

    def _fill(self) -> None:
        while len(self.pending) < self.depth:
            nxt = next(self.frontier, None)
            if nxt is None:
                return
            q, item = nxt
            self.pending.append((q, self.submit(q, item)))

    def drop(self) -> None:
        """Cancel everything in flight (a pass that was not the guess, an abandoned pass, close)."""
        while self.pending:
            self.cancel(self.pending.popleft()[1])
        self.frontier, self.head = None, None
        self.sizes.clear()

    def run(self, p: Pass):
        if self.head != p:
            self.drop()
            self.head, self.frontier = p, chain(self.loader, p, self._items)
        elif self.pending:
            self.prefetched += 1
        self._fill()
        n, done = (self.sizes[0] if self.sizes else 0), False
        try:
            for _ in range(n):
                q, handle = self.pending.popleft()
                out = self.wait(handle)
                self._fill()
                yield out
            done = True
        finally:
            if done:
                self.sizes.popleft()
                self.head = following(self.loader, p)
            else:  # abandoned mid-pass (or a worker failed): nothing in flight is trusted
                self.drop()
