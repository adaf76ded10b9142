"""What the DALI pipeline reads: one pass's files, fed by an external source from our arrays.

DALI's file reader takes its list as a build-time argument: for ImageNet's 1.28 M files the
Python list of paths, its copy into the pipeline's definition and the reader's own copy took
~2.5 s + ~8 s and ~1.75 GB of memory per pipeline (measured here on 256,200 files: 0.5 s to
define, 1.7 s to build, +350 MB RSS), and cross-epoch prefetch keeps two pipelines alive.
Instead each pipeline gets a `PassFiles`: the pass's sample indices (one int64 array) over the
dataset's compact `Samples` arrays; DALI calls it once per iteration (in schedule_run, in the
calling thread) and it reads that batch's files as uint8 arrays (~20-50 us a file: a few
percent of a batch's decode time). Nothing of size N is built beyond the order itself.

The iteration index wraps around the pass, so a val pipeline that serves its next pass too
(loaders/dali_ahead.py) reads the same files again. The last batch is short (no padding).
"""
from __future__ import annotations

import numpy as np

from .datasets import undecodable


def _read(path: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            return np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as e:  # called from schedule_run in our thread: one line naming the file
        raise undecodable(path, e) from None


class PassFiles:
    """DALI external-source callback: batch k of a pass as ([encoded bytes], labels)."""

    def __init__(self, samples, order, batch_size: int):
        self.samples, self.batch_size = samples, batch_size
        self.order = np.asarray(order, dtype=np.int64)
        self.batches = max(1, -(-len(self.order) // batch_size))

    def indices(self, iteration: int) -> np.ndarray:
        k = iteration % self.batches
        return self.order[k * self.batch_size:(k + 1) * self.batch_size]

    def paths(self, iteration: int) -> list[str]:
        """The files of one iteration (a decode error can name them)."""
        return [self.samples[int(i)][0] for i in self.indices(iteration)]

    def __call__(self, info):
        idx = self.indices(info.iteration)
        files, labels = [], np.empty(len(idx), dtype=np.int64)
        for k, i in enumerate(idx.tolist()):
            path, labels[k] = self.samples[i]
            files.append(_read(path))
        return files, labels
