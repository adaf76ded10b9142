"""Result records: one JSON object per line, appended atomically, each with the config and
the hardware fingerprint (reports group on it; nothing in a report is typed by hand)."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path

from .hardware import fingerprint, slug

SCHEMA = 1
KINDS = ("loader", "train", "eval", "accuracy", "epoch", "ceiling", "tune", "benchmark", "gpu_check")
RUN_ID = uuid.uuid4().hex[:12]  # one per process: groups the records of one invocation
REPO = Path(__file__).resolve().parents[2]


def git_info() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short=12", "HEAD")
    return {"commit": commit or None, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def default_path() -> Path:
    return REPO / "results" / f"{slug()}.jsonl"


def make_record(kind: str, *, loader=None, variant=None, arch=None, dataset=None, config=None,
                metrics=None, status="ok", error=None, **extra) -> dict:
    assert kind in KINDS, kind
    rec = {
        "schema": SCHEMA,
        "run_id": RUN_ID,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "git": git_info(),
        "kind": kind,
        "loader": loader,
        "variant": variant,
        "arch": arch,
        "dataset": dataset or {},
        "config": config or {},
        "hardware": fingerprint(),
        "metrics": metrics or {},
        "status": status,
        "error": error,
    }
    rec.update(extra)
    return rec


def append(record: dict, path: str | Path | None = None) -> Path:
    """Append one line under an exclusive lock (several ranks/processes may write at once)."""
    path = Path(path) if path else default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=False, default=str) + "\n"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
        fcntl.flock(f, fcntl.LOCK_UN)
    return path


def load(paths) -> list[dict]:
    """Records from files (a bad line names its file and line number)."""
    out = []
    for p in paths:
        with open(p) as f:
            for i, line in enumerate(f, 1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{p}:{i}: not a JSON record ({e.msg})") from None
    return out
