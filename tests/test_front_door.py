"""The front door (`python -m bench.run` as a newcomer types it): every bad flag value is one
line and exit 2 with nothing recorded, misspellings get a "did you mean", --help is grouped and
imports no torch, short windows and untrained weights are flagged, ad-hoc records stay local."""
from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest

from tests.test_cli import REPO, run

BAD = [
    (["--batch-size", "0"], "--batch-size 0: must be a positive integer"),
    (["--batch-size", "-3"], "--batch-size -3: must be a positive integer"),
    (["--res", "0"], "--res 0: must be a positive integer"),
    (["--epochs", "0"], "--epochs 0: must be a positive integer"),
    (["--epochs", "-1"], "--epochs -1: must be a positive integer"),
    (["--steps", "0"], "--steps 0: must be a positive integer"),
    (["--seconds", "0"], "--seconds 0.0: must be more than 0"),
    (["--mode", "train", "--arch", "seed_cnn", "--res", "7"], "--res 7: seed_cnn"),
    (["--data", "embedded:abc"], "--data embedded:abc: after 'embedded:' comes a positive number"),
    (["--data", "fashion-mnist:0"], "--data fashion-mnist:0: after 'fashion-mnist:' comes a positive number"),
    (["--data", "/no/such/folder"], "--data /no/such/folder: not a folder"),
    (["--loader", "torchvison"], "did you mean 'torchvision'?"),
    (["--loader", "torchvision", "--loader-options", "pool=fork"], "pool"),
    (["--mode", "eval", "--init", "/no/such.pt"], "--init /no/such.pt: no such file"),
    (["--resume", "/no/such.pt"], "--resume /no/such.pt: no such file"),
]


@pytest.mark.parametrize("args,says", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_value_is_one_line_exit_2_and_nothing_recorded(args, says, tmp_path):
    out = tmp_path / "r.jsonl"
    p = run(*args, "--out", str(out))
    assert p.returncode == 2, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("error: ") and says in line, line
    assert "Traceback" not in p.stderr and not out.exists()


@pytest.mark.parametrize("args,says", [
    (["--loadr", "dali"], "did you mean --loader?"),
    (["--mode", "acuracy"], "did you mean 'accuracy'?"),
])
def test_a_misspelled_flag_or_choice_gets_did_you_mean(args, says):
    p = run(*args)
    assert p.returncode == 2
    (line,) = p.stderr.strip().splitlines()
    assert says in line and "--help" in line


def test_help_is_grouped_lists_loaders_and_archs_and_has_examples():
    p = run("--help")
    assert p.returncode == 0
    groups = [line[:-1] for line in p.stdout.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    for g in ("what to run", "data", "how long", "compute", "optimisation", "evaluation", "checkpoints", "output"):
        assert any(g in x for x in groups), (g, groups)
    flat = " ".join(p.stdout.split())  # argparse wraps the help lines
    listed = flat.split("; here: ")[1].split(" --")[0]
    assert {"synthetic", "torchvision", "torchvision-gpu", "dali", "dali-cpu", "ffcv"} <= set(listed.replace(",", " ").split())
    assert "resnet18" in flat and "mobilenet_v3_small" in flat and "(default: " in flat
    assert "examples (CPU" in p.stdout and "on a GPU machine:" in p.stdout


def test_help_and_flag_errors_import_no_torch():
    code = ("import sys\nfrom bench.run import main\n"
            "for argv in (['--help'], ['--batch-size', '0'], ['--loadr', 'x']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.stdout.strip().splitlines()[-1] == "False", p.stdout + p.stderr


def test_a_short_window_is_flagged_in_the_record_and_on_stderr(tiny_root, tmp_path):
    out = tmp_path / "r.jsonl"
    p = run("--loader", "torchvision", "--data", str(tiny_root), "--steps", "3", "--warmup", "1", "--batch-size", "4",
            "--res", "32", "--out", str(out))
    assert p.returncode == 0, p.stderr
    (rec,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert rec["status"] == "ok" and any("too short to trust" in w for w in rec["warnings"])
    assert "warning: " in p.stderr and "too short to trust" in p.stderr


def test_eval_on_random_weights_says_so(tiny_root, tmp_path):
    out = tmp_path / "r.jsonl"
    p = run("--mode", "eval", "--loader", "torchvision", "--arch", "demo_net", "--data", str(tiny_root), "--batch-size", "4",
            "--res", "32", "--out", str(out))
    assert p.returncode == 0, p.stderr
    (rec,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert any("randomly initialised" in w for w in rec["warnings"]) and "no --init" in p.stderr


def test_chance_level_and_a_schedule_that_never_decays_are_flagged():
    from types import SimpleNamespace as NS

    from bench.harness.honesty import learning_warnings, schedule_warnings

    assert "chance level for 10 classes" in learning_warnings({"top1": 0.1}, 10)[0]  # AlexNet at lr 0.4: a constant guess
    assert learning_warnings({"top1": 0.3}, 10) == [] and learning_warnings({"top1": 0.55}, 2) != []
    assert learning_warnings({"top1": 0.7}, 2) == [] and learning_warnings({}, 10) == []
    tri = dict(lr_schedule="triangular", lr_peak_epoch=1.2)
    assert "never decays; set --lr-peak-epoch below 1" in schedule_warnings(NS(epochs=1, **tri))[0]
    assert schedule_warnings(NS(epochs=6, **tri)) == [] and schedule_warnings(NS(epochs=1, lr_schedule="cosine", lr_peak_epoch=2.0)) == []


def test_an_accuracy_run_says_its_schedule_never_decays_before_it_trains(tiny_root, tmp_path):
    out = tmp_path / "r.jsonl"
    p = run("--mode", "accuracy", "--loader", "torchvision", "--arch", "demo_net", "--data", str(tiny_root), "--epochs", "1",
            "--lr-peak-epoch", "2", "--batch-size", "4", "--res", "32", "--out", str(out))
    assert p.returncode == 0, p.stderr
    err = p.stderr
    assert "warning: the learning rate peaks at epoch 2" in err and err.index("peaks at epoch 2") < err.index("epoch 1/1")
    (final,) = [json.loads(x) for x in out.read_text().splitlines() if '"kind": "accuracy"' in x]
    assert any("never decays" in w for w in final["warnings"])


def test_ad_hoc_records_default_to_a_git_ignored_local_file():
    from bench.results import committed_path, default_path, out_path

    local = default_path()
    assert local.parent == REPO / "results" / "local" and local.name == committed_path().name
    ignored = subprocess.run(["git", "check-ignore", "-q", str(local)], cwd=REPO)
    assert ignored.returncode == 0, f"{local} is not git-ignored"
    assert out_path(None) == local and out_path(REPO / "results") == committed_path()


def test_out_results_is_called_the_committed_file(tmp_path, monkeypatch):
    from bench.harness.session import _summary
    from bench.results import committed_path

    monkeypatch.chdir(REPO)
    cfg = type("C", (), {"output": type("O", (), {"out": "results", "json": False})()})()
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        _summary(cfg, [])
    assert buf.getvalue().strip() == f"records appended to {Path('results') / committed_path().name}"
