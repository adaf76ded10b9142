"""Preemption: SIGTERM (spot instances, SLURM time limits) or SIGINT during an accuracy run.

The handler only raises a flag; the training loop asks `stop(batch)` after each step, so the
step in flight finishes, the mode writes a checkpoint that says where in the epoch the run
stood, one line says so, and the run exits non-zero (128 + the signal, the shell's convention)
without a traceback. Under torchrun every rank gets the signal at about the same time, but a
DDP step is collective, so the ranks must stop at the same step: they agree (comm.any) every
AGREE_EVERY steps (every step on the CPU; on CUDA an agreement is a host sync, so less often).
"""
from __future__ import annotations

import signal

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
    """The run was stopped by a signal after writing its checkpoint (message: one line)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopFlag:
    """Installed for the duration of a run: remembers the first stop signal; `stop(batch)` is
    what the training loop asks."""

    def __init__(self, comm, every: int = 1, log=print):
        self.comm, self.every, self.log = comm, max(1, every), log
        self.signum: int | None = None
        self.common_batches: int | None = None  # batches every rank's shard has (set per run)
        self._old: dict = {}

    def _handle(self, signum, frame):
        if self.signum is None:
            self.signum = signum
            if self.comm.is_main:
                self.log(f"received {signal.Signals(signum).name}: finishing the current step, then writing a checkpoint")

    def __enter__(self):
        for s in SIGNALS:
            self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)

    def stop(self, batch: int) -> bool:
        if self.comm.world == 1:
            return self.signum is not None
        # Every rank must ask at the same batches: only where all shards have the batch (a rank
        # with one batch more runs it alone, under DDP's Join) and every `every` batches.
        if batch % self.every or (self.common_batches is not None and batch > self.common_batches):
            return False
        agreed = self.comm.any(self.signum is not None)
        if agreed and self.signum is None:
            self.signum = signal.SIGTERM  # another rank was signalled: stop with the group
        return agreed
