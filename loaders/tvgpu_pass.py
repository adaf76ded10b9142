"""One pass of torchvision-gpu's pipeline: producer threads building a list of batches ahead.

Started on construction (so a pass can be started before the consumer asks for it: the next
epoch's first batches in flight while this one ends, see TorchvisionGpuLoader._batches).
Producer p builds batches p, p+P, p+2P, ... into its own queue, so the consumer reads batch k
from queue k % P and the order needs no bookkeeping. With P > 1 one batch's host work (Python,
GIL) overlaps another's decode (torchvision serialises decode calls behind one lock, so more
than 2 only adds GIL contention). Each producer keeps up to `depth` batches queued and its
file reads up to depth + 1 batches ahead; it works on its own CUDA stream and hands each batch
with an event recorded after it.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque

import torch

from .tvgpu_host import _read


class Pass:
    def __init__(self, loader, chunks: list[list[int]], res: int, epoch: int, depth: int, producers: int):
        self.loader, self.chunks, self.res, self.epoch, self.depth = loader, chunks, res, epoch, max(1, depth)
        self.P = max(1, min(producers, len(chunks)))
        self.queues = [queue.Queue(maxsize=self.depth) for _ in range(self.P)]
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._produce, args=(p,), name=f"tvgpu-produce-{p}", daemon=True)
                        for p in range(self.P)]
        for t in self.threads:
            t.start()

    def _put(self, q, x) -> bool:
        while not self.stop_event.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, p: int) -> None:
        L, mine, q = self.loader, self.chunks[p :: self.P], self.queues[p]
        samples, pool = L._samples, L._pool
        stream = torch.cuda.Stream(L.device) if L.cuda else None
        try:
            ctx = torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
            with ctx, torch.no_grad():
                reads: deque = deque()
                ahead = 0
                for k, chunk in enumerate(mine):
                    while ahead < len(mine) and ahead <= k + self.depth:  # reads run ahead of decode
                        reads.append([pool.submit(_read, samples[i][0]) for i in mine[ahead]])
                        ahead += 1
                    futures = reads.popleft()
                    if self.stop_event.is_set():
                        return
                    t = time.perf_counter()
                    items = [f.result() for f in futures]
                    L._count("read_wait_s", time.perf_counter() - t)
                    images, labels = L._make_batch(chunk, items, self.res, self.epoch)
                    event = None
                    if stream is not None:
                        event = torch.cuda.Event()
                        event.record(stream)
                    if not self._put(q, (images, labels, event)):
                        return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            self._put(q, e)

    def get(self, k: int):
        """Batch k of this pass: (uint8 images, labels), ready on the current stream."""
        item = self.queues[k % self.P].get()
        if isinstance(item, BaseException):
            raise item
        images, labels, event = item
        if event is not None:
            current = torch.cuda.current_stream(self.loader.device)
            current.wait_event(event)
            images.record_stream(current)  # made on the producer's stream, used on this one
        return images, labels

    def stop(self) -> None:
        self.stop_event.set()
        for q in self.queues:
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
        for t in self.threads:
            t.join(timeout=30)
