"""Recipes: every YAML in bench/recipes resolves, and the FFCV ones say what FFCV published."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli.parser import RECIPES, ConfigError, load_recipe, resolve
from bench.training.state import lr_factor, res_at

REPO = Path(__file__).resolve().parent.parent
ALL = sorted(p.stem for p in RECIPES.glob("*.yaml"))
EPOCHS = (16, 24, 32, 40, 56, 88)
# libffcv/ffcv-imagenet rn*_configs/*_epochs.yaml: resolution.start_ramp / end_ramp per epoch count
RAMPS = {16: (11, 13), 24: (17, 20), 32: (23, 27), 40: (29, 34), 56: (41, 48), 88: (65, 76)}
# (batch_size per GPU, GPUs, published absolute lr.lr, weight_decay)
PUBLISHED = {"rn18": (1024, 1, 0.5, 5e-5), "rn50": (512, 8, 1.7, 1e-4)}


def test_the_ffcv_recipes_are_all_there():
    assert {f"{a}-{e}ep" for a in PUBLISHED for e in EPOCHS} <= set(ALL)
    assert "small-images" in ALL


@pytest.mark.parametrize("name", ALL)
def test_recipe_resolves(name):
    cfg, _ = resolve(["--recipe", name])
    assert cfg.run.recipe == name and cfg.schedule.epochs >= 1 and cfg.data.batch_size >= 1 and cfg.optim.lr > 0
    assert json.dumps(cfg.flat()) and json.dumps(cfg.as_dict())  # serialisable into every record
    # the CLI still overrides a recipe
    assert resolve(["--recipe", name, "--epochs", "3"])[0].schedule.epochs == 3


@pytest.mark.parametrize("arch", PUBLISHED)
@pytest.mark.parametrize("epochs", EPOCHS)
def test_ffcv_recipe_matches_published_config(arch, epochs):
    c, _ = resolve(["--recipe", f"{arch}-{epochs}ep"])
    cfg = type("Flat", (), c.flat())
    bs, gpus, lr, wd = PUBLISHED[arch]
    assert cfg.arch == ({"rn18": "resnet18", "rn50": "resnet50"}[arch],) and cfg.epochs == epochs
    assert cfg.batch_size == bs and cfg.weight_decay == wd and cfg.momentum == 0.9 and cfg.label_smoothing == 0.1
    # FFCV's lr is absolute for batch_size per GPU x world_size GPUs; ours is per 256 images
    assert cfg.lr * cfg.batch_size * gpus / 256 == pytest.approx(lr)
    assert cfg.lr_schedule == "triangular" and cfg.lr_peak_epoch == 2
    assert cfg.blurpool and cfg.tta and cfg.val_res == 256 and cfg.crop_ratio == pytest.approx(224 / 256)
    assert (cfg.min_res, cfg.max_res, (cfg.start_ramp, cfg.end_ramp)) == (160, 192, RAMPS[epochs])
    res = [res_at(e, c.schedule, c.data.res) for e in range(epochs)]
    assert res[0] == 160 and res[-1] == 192 and res == sorted(res)
    assert lr_factor(2, c.schedule) == pytest.approx(1.0) and lr_factor(epochs, c.schedule) == pytest.approx(0.0)


def test_print_config_prints_the_resolved_recipe():
    p = subprocess.run([sys.executable, "-m", "bench.run", "--recipe", "rn18-16ep", "--print-config"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    cfg = json.loads(p.stdout)
    assert set(cfg) == {"run", "model", "data", "schedule", "measure", "compute", "optim", "eval", "checkpoint", "output"}
    assert cfg["run"]["recipe"] == "rn18-16ep" and cfg["model"]["arch"] == ["resnet18"] and cfg["data"]["batch_size"] == 1024
    s = cfg["schedule"]
    assert (s["min_res"], s["max_res"], s["start_ramp"], s["end_ramp"], cfg["data"]["val_res"]) == (160, 192, 11, 13, 256)


@pytest.mark.parametrize("text,message", [
    ("optim: {epochs: 3}", "'epochs' belongs in section 'schedule', not 'optim'"),
    ("training: {epochs: 3}", "'training' is not a section"),
    ("schedule: {epoks: 3}", "unknown key schedule.epoks"),
    ("schedule: {epochs: three}", "schedule.epochs must be an integer"),
])
def test_a_bad_recipe_is_one_line_naming_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message) as e:
        load_recipe(str(path))
    assert str(path) in str(e.value) and "\n" not in str(e.value)
