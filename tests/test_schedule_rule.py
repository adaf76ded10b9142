"""The small-data schedule rule: at least min_steps optimiser steps, the schedule stretched by
one factor (bench/training/schedule_rule.py), and bench.run applying it in accuracy mode."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli.config import RunConfig
from bench.cli.parser import resolve
from bench.training.schedule_rule import describe, steps_per_epoch, stretch_factor, stretched
from bench.training.state import lr_factor

REPO = Path(__file__).resolve().parent.parent


def test_steps_per_epoch_counts_the_partial_batch():
    assert steps_per_epoch(6000, 256) == 24 and steps_per_epoch(60000, 256) == 235 and steps_per_epoch(256, 256) == 1
    assert steps_per_epoch(6000, 256, world=2) == 12  # 3,000 per rank
    assert steps_per_epoch(5, 4, world=2) == 1  # ranks of 3 and 2 samples


def test_small_data_gets_more_epochs_and_a_stretched_schedule():
    cfg = RunConfig.of(mode="accuracy", epochs=8, min_steps=1000, batch_size=256, lr_peak_epoch=1.6)
    small = stretched(cfg, 6000)
    assert (small.schedule.epochs, small.schedule.lr_peak_epoch) == (42, 8.4)  # 42 x 24 = 1,008 steps
    assert stretched(cfg, 60000) is cfg  # 8 x 235 = 1,880 steps: enough already
    # the LR curve keeps its shape: the same factor at the same fraction of the run
    for frac in (0.1, 0.2, 0.5, 0.9):
        assert lr_factor(frac * small.schedule.epochs, small.schedule) == pytest.approx(lr_factor(frac * 8, cfg.schedule), abs=1e-9)


@pytest.mark.parametrize("n", [5000, 6000, 7777, 20000, 59999, 60000])
def test_the_fewest_whole_epochs_that_reach_min_steps(n):
    epochs, f = stretch_factor(5, 1000, n, 256)
    per = steps_per_epoch(n, 256)
    assert epochs * per >= 1000 and (epochs == 5 or (epochs - 1) * per < 1000)
    assert f == pytest.approx(epochs / 5)


def test_every_epoch_valued_field_is_stretched_and_none_stays_none():
    cfg = RunConfig.of(epochs=4, min_steps=80, batch_size=10, warmup_epochs=0.5, step_length=3, start_ramp=1, end_ramp=3)
    out = stretched(cfg, 100).schedule  # 10 steps an epoch: 8 epochs, factor 2
    assert (out.epochs, out.warmup_epochs, out.step_length, out.start_ramp, out.end_ramp) == (8, 1.0, 6, 2, 6)
    assert stretched(cfg.replace(start_ramp=None), 100).schedule.start_ramp is None
    out = stretched(cfg, 100)
    assert "100 train images give 10 steps an epoch; 4 epochs -> 8" in describe(cfg, out, 100)


@pytest.mark.parametrize("off", [None, 0])
def test_no_min_steps_leaves_the_recipe_alone(off):
    cfg = RunConfig.of(epochs=5, min_steps=off)
    assert stretched(cfg, 10) is cfg and describe(cfg, cfg, 10) is None


def test_small_images_recipe_sets_the_rule():
    c, _ = resolve(["--recipe", "small-images"])
    s, bs = c.schedule, c.data.batch_size
    assert s.min_steps and s.min_steps > steps_per_epoch(6000, bs) * s.epochs  # it stretches a 6,000 subset
    assert s.epochs * steps_per_epoch(60000, bs) >= s.min_steps  # and leaves the full set alone


def test_bench_run_applies_the_rule(tiny_root, tmp_path):
    out = tmp_path / "r.jsonl"  # 15 train images at batch 4: 4 steps an epoch, so 8 steps take 2 epochs
    p = subprocess.run([sys.executable, "-m", "bench.run", "--no-progress", "--mode", "accuracy", "--arch", "seed_cnn", "--data", str(tiny_root),
                        "--epochs", "1", "--min-steps", "8", "--batch-size", "4", "--res", "32", "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "15 train images give 4 steps an epoch; 1 epochs -> 2 to reach min_steps 8" in p.stderr
    final = json.loads(out.read_text().splitlines()[-1])
    assert final["metrics"]["epochs"] == 2 and final["config"]["epochs"] == 2 and final["config"]["min_steps"] == 8
