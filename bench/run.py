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


if __name__ == "__main__":
    sys.exit(main())
