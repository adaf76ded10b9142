"""bench/gpu_check.sh: its smoke mode runs here (tiny sizes, CPU), measuring a steady-state set
and a deliberately small one; the summary counts the epoch starts inside each window."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu.check_summary import epoch_starts

ROOT = Path(__file__).resolve().parents[1]


def _rec(variant, n_train, n_val, steps, warmup, batch=256):
    return {"variant": variant, "dataset": {"train": n_train, "val": n_val},
            "config": {"batch_size": batch, "steps": steps, "warmup": warmup}}


@pytest.mark.parametrize("rec,starts", [
    (_rec("train", 10240, 2560, 30, 10), 0),   # steady: 40 batches, 40 drawn
    (_rec("train", 10240, 2560, 31, 10), 1),   # one past the epoch
    (_rec("val", 10240, 2560, 8, 2), 0),       # val: 10 batches
    (_rec("train", 1280, 320, 30, 10), 7),     # small: 5 batches an epoch, 40 drawn
    (_rec("resnet50", 1280, 320, 30, 10), 7),  # train mode's variant is the arch: train split
    (_rec("train", 1300, 320, 30, 10), 7),     # train drops the partial batch
])
def test_epoch_starts_inside_the_window(rec, starts):
    assert epoch_starts(rec) == starts


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(ROOT / "bench/gpu_check.sh")]).returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_mode_measures_steady_and_small_sets(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "GPU_CHECK_SMOKE": "1", "OUT": str(out), "PYTHON": sys.executable,
           "LOADERBENCH_DATA": str(tmp_path / "data"), "GPU_CHECK_ONLY": "loader,small,scaling",
           "GPU_CHECK_DALI_PARTS": str(tmp_path / "no-parts"), "GPU_CHECK_DALI_CARRIED": str(tmp_path / "none"),
           "GPU_CHECK_DALI_SITE": str(tmp_path / "site")}
    # An earlier call's prep: both datasets made in a background session; the check waits for it.
    prep = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, env={**env, "GPU_CHECK_PREP": "1"},
                          capture_output=True, text=True, timeout=60)
    assert prep.returncode == 0 and "making embedded:4 and embedded:1 in the background" in prep.stdout, prep.stdout + prep.stderr
    r = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    made = [x for x in (tmp_path / "data" / "prep.log").read_text().splitlines() if x.startswith("{'name': 'embedded")]
    assert len(made) == 2  # the prep made both
    bad = [x for x in r.stdout.splitlines() if x.startswith("--") and ("fail(" in x or "timeout(" in x)]
    assert r.returncode == 0, "\n".join(bad) + r.stdout[-1500:] + r.stderr[-1500:]
    records = [json.loads(line) for line in open(out / "gpu.jsonl")]
    loader = [x for x in records if x["kind"] == "loader" and x["status"] == "ok"]
    sets = {x["dataset"]["name"]: max(epoch_starts(y) for y in loader if y["dataset"]["name"] == x["dataset"]["name"])
            for x in loader}
    assert sets == {"embedded-v1-4": 0, "embedded-v1-1": 3}, sets  # steady: none; small: every step
    assert {x["loader"] for x in records if x["kind"] == "scaling"} == {"torchvision", "dali-cpu"}
    check = [x for x in records if x["kind"] == "gpu_check"][-1]
    assert check["status"] == "ok" and check["metrics"]["steps_failed"] == 0
    assert "dali install: SKIPPED (no DALI parts" in r.stdout
