"""`python -m bench.run`: measure loaders, training, evaluation and accuracy.

    python -m bench.run --mode loader --loader all --steps 50
    python -m bench.run --mode train --loader torchvision,synthetic --arch resnet18 --res 64
    python -m bench.run --mode accuracy --recipe cpu-demo

Each measurement appends one JSON record (config, hardware fingerprint, metrics, status) to
--out (default results/local/<machine>.jsonl, git-ignored: ad-hoc runs never touch the
committed records; `--out results` writes results/<machine>.jsonl); a configuration that fails becomes a record with
status error, and the run goes on. The configuration is bench/cli/config.py, the modes are
bench/harness/, the training core bench/training/.
"""
from __future__ import annotations

import json
import os
import sys

from .cli.parser import ConfigError, resolve


def main(argv=None) -> int:
    try:
        cfg, args = resolve(argv)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(cfg.as_dict(), indent=2))
        return 0
    from .harness.session import main as run_session  # imports torch: only when a run starts

    return run_session(cfg)


def exit_now(code: int) -> None:
    """End the process without the interpreter's teardown, once main() has returned.

    Torch's module teardown at exit costs ~0.6 s and can raise the peak RSS by ~188 MB
    (measured: `python -c "import torch"` 917 MB maxrss, 729 MB with os._exit at the end); on
    the ImageNet-shaped cached start (issue #16) it was the peak: 1.05 GB, 1.00 GB without it.
    What the interpreter's exit does that matters is done here, in its order: join non-daemon threads,
    run the atexit handlers (multiprocessing joins its children, logging flushes), flush
    stdout/stderr. Every loader and record file is closed by then (the session's `with`s).
    The CLI path only: tests call main() in-process; under a profiler (`python -m cProfile -o`
    writes its file after the module returns) the ordinary exit.
    """
    import atexit
    import threading

    if sys.getprofile() is not None:
        sys.exit(code)

    getattr(threading, "_shutdown", lambda: None)()  # what Py_Finalize runs first (every CPython 3.x)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader gone (`| head`) or a closed stream:
            code = 120  # the status CPython's own exit gives a failed flush
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
