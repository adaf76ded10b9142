"""Backend failures that are not bad input: a DataLoader worker process killed (SIGKILL, the
out-of-memory killer), an FFCV batch thread or a decode thread raising. Each ends the pass at
once with one line (LoaderFailure: what died, and what to do), never a hang.

  * torchvision, pool=processes: torch notices a dead worker (its SIGCHLD handler, or a 5 s
    status check) and raises "DataLoader worker (pid N) is killed by signal: Killed.";
    `worker_died` turns that into a LoaderFailure, in the loader and in the harness (the
    handler can fire anywhere in the training step).
  * FFCV: its EpochIterator thread dies on an exception and the consumer waits on its queue
    forever (ffcv/loader/epoch_iterator.py: no error path). `ffcv_batches` reads the queue with
    a timeout and, when the thread is gone without its end marker, raises with the thread's
    exception, kept by a threading.excepthook that takes FFCV's EpochIterator threads only
    (their traceback is not printed: the one line says it).
  * DALI: its threads' errors reach share_outputs as exceptions; loaders/decode_errors.DaliGuard
    makes them one line (the file, or DALI's first line).
"""
from __future__ import annotations

import threading
from queue import Empty

POLL_S = 0.5  # how often a waiting consumer checks that FFCV's thread is still alive
DEATH_WAIT_S = 3.0  # how long a broken transfer waits for a worker's exit to show


class LoaderFailure(RuntimeError):
    """A loader's worker process or thread died: the message is one line, what and what to do."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def _dead_worker(dataloader) -> str | None:
    """"DataLoader worker (pid N) ..." for a worker process of `dataloader` that has exited."""
    from multiprocessing.connection import wait

    workers = list(getattr(getattr(dataloader, "_iterator", None), "_workers", None) or [])
    if workers:  # a transfer broken by a dying worker comes before its exit is visible: its fds
        ready = wait([w.sentinel for w in workers], timeout=DEATH_WAIT_S)  # close first, then it exits
        for w in workers:
            if w.sentinel in ready:
                w.join(timeout=DEATH_WAIT_S)
    for w in workers:
        code = w.exitcode
        if code is not None:
            how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            return f"DataLoader worker (pid {w.pid}) {how}"
    return None


def worker_died(e: BaseException, dataloader=None) -> BaseException:
    """torch's error for a dead DataLoader worker as a LoaderFailure; any other error as it is.
    With the DataLoader, also a broken transfer (ConnectionResetError, EOFError: the worker died
    while handing over a batch) when one of its workers is gone."""
    text = str(e)
    first = None
    if isinstance(e, RuntimeError) and "DataLoader worker" in text and ("killed by signal" in text or "exited unexpectedly" in text):
        first = text.strip().splitlines()[0].rstrip(". ")
    elif isinstance(e, (RuntimeError, OSError, EOFError)) and dataloader is not None:
        first = _dead_worker(dataloader)
    if first is None:
        return e
    return LoaderFailure(f"torchvision: {first}; a worker process died (killed, or out of memory: see `dmesg`); "
                         "rerun, with fewer --workers or --loader-options pool=threads")


def worker_message(e: Exception) -> str:
    """The original one-line message of an exception a DataLoader worker raised (the main
    process gets "Caught X in DataLoader worker process N" and the worker's traceback)."""
    lines = [line for line in str(e).splitlines() if line.strip()]
    for line in reversed(lines):
        if f"{type(e).__name__}: " in line:
            return line.split(f"{type(e).__name__}: ", 1)[1]
    return lines[-1] if lines else type(e).__name__


# -- FFCV's batch thread ---------------------------------------------------------------------
_HOOK_LOCK = threading.Lock()
_previous_hook = None


def _is_ffcv_thread(thread) -> bool:
    return thread is not None and type(thread).__name__ == "EpochIterator" and type(thread).__module__.startswith("ffcv")


def _hook(args) -> None:
    if _is_ffcv_thread(args.thread):
        args.thread.loaderbench_failure = args.exc_value  # reported by ffcv_batches, in one line
        return
    _previous_hook(args)


def watch_ffcv_threads() -> None:
    """Keep FFCV's EpochIterator threads' exceptions for ffcv_batches: before a thread starts
    (an iterator started ahead, or warmed at construction, can die before it is read)."""
    _install_hook()


def _install_hook() -> None:
    global _previous_hook
    with _HOOK_LOCK:
        if _previous_hook is None:
            _previous_hook = threading.excepthook
            threading.excepthook = _hook


def ffcv_batches(it):
    """What iterating FFCV's EpochIterator yields, without its hang when the thread dies."""
    from ffcv.loader.epoch_iterator import IS_CUDA

    _install_hook()
    while True:
        try:
            item = it.output_queue.get(timeout=POLL_S)
        except Empty:
            if it.is_alive():
                continue
            try:  # it may have put its last items just before it ended
                item = it.output_queue.get_nowait()
            except Empty:
                err = getattr(it, "loaderbench_failure", None)
                why = _first_line(err) if err is not None else "it ended without its end-of-epoch marker"
                raise LoaderFailure(f"ffcv: its batch thread died mid-epoch ({why}); the run cannot go on") from None
        if item is None:
            it.close()
            return
        slot, result = item
        if IS_CUDA:  # what EpochIterator.__next__ does: wait for the batch's copy
            it.current_stream.wait_stream(it.cuda_streams[slot])
        yield result
