"""`python -m bench.run`: valid records, --json on stdout only, sweeps survive failures."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
KEYS = {"schema", "run_id", "time", "git", "kind", "loader", "variant", "arch", "dataset", "config", "hardware", "metrics", "status", "error"}


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "bench.run", "--no-progress", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ}, timeout=300, **kw)


def test_loader_mode_json_records(tiny_root, tmp_path):
    out = tmp_path / "r.jsonl"
    p = run("--mode", "loader", "--loader", "torchvision,synthetic", "--data", str(tiny_root), "--steps", "3", "--warmup", "1",
            "--batch-size", "4", "--res", "32", "--json", "--out", str(out))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    recs = [json.loads(line) for line in lines]  # nothing but records on stdout
    assert len(recs) == 2 and [json.loads(x) for x in out.read_text().splitlines()] == recs
    for r in recs:
        assert KEYS <= set(r) and r["status"] == "ok" and r["kind"] == "loader"
        assert r["metrics"]["images_per_sec"] > 0 and r["metrics"]["steps"] == 3
        assert r["hardware"]["cores"] >= 1 and r["hardware"]["torch"]
        assert r["dataset"]["train"] == 15 and r["config"]["batch_size"] == 4


def test_an_unknown_architecture_is_refused_before_anything_runs(tiny_root, tmp_path):
    out = tmp_path / "r.jsonl"
    p = run("--mode", "train", "--loader", "synthetic", "--arch", "resnet81,demo_net", "--data", str(tiny_root), "--out", str(out))
    assert p.returncode == 2 and not out.exists()
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith("error: --arch resnet81: not an arch; choose from ") and line.endswith("did you mean 'resnet18'?")


def test_train_mode_reports_ratio_to_synthetic(tiny_root, tmp_path):
    out = tmp_path / "r.jsonl"
    p = run("--mode", "train", "--loader", "torchvision", "--arch", "demo_net", "--data", str(tiny_root), "--steps", "3",
            "--warmup", "1", "--batch-size", "4", "--res", "32", "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    (rec,) = [json.loads(x) for x in p.stdout.splitlines()]
    m = rec["metrics"]
    assert 0 <= m["data_wait_frac"] <= 1 and m["compute_ips"] > 0
    assert abs(m["ratio_to_synthetic"] - m["images_per_sec"] / m["compute_ips"]) < 0.01
    assert rec["config"]["workers"] + rec["config"]["threads"] <= max(2, os.cpu_count())
    assert rec["config"]["model_variant"] == "native"  # which network was measured (resnet18 at 32 px: "small")


def test_print_config_resolves_recipe_with_overrides():
    p = run("--recipe", "cpu-demo", "--epochs", "3", "--print-config")
    cfg = json.loads(p.stdout)
    assert cfg["model"]["arch"] == ["demo_net"] and cfg["schedule"]["epochs"] == 3 and cfg["data"]["res"] == 64


def test_loader_options_reach_only_the_loaders_that_read_them(tiny_root, tmp_path):
    out = tmp_path / "r.jsonl"
    p = run("--mode", "loader", "--loader", "torchvision,synthetic", "--loader-options", "pool=processes, chunk=3",
            "--data", str(tiny_root), "--steps", "2", "--warmup", "1", "--batch-size", "4", "--res", "32", "--workers", "2",
            "--out", str(out), "--json")
    assert p.returncode == 0, p.stderr
    tv, syn = [json.loads(x) for x in p.stdout.splitlines()]
    assert tv["status"] == syn["status"] == "ok"
    assert tv["config"]["backend"]["pool"] == "processes" and tv["config"]["backend"]["chunk"] == 3  # YAML values: an int
    assert tv["config"]["loader_options"] == {"pool": "processes", "chunk": 3}  # typed once, at the command line
    assert (tv["config"]["loader"], syn["config"]["loader"]) == ("torchvision", "synthetic"), "each record's own loader"


def test_a_loader_option_no_selected_loader_reads_is_an_error(tiny_root):
    p = run("--mode", "loader", "--loader", "torchvision", "--loader-options", "pol=processes", "--data", str(tiny_root))
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip() == "error: --loader-options pol: no selected loader reads it (torchvision: pool, chunk, task, decoder)"


def test_build_hands_each_backend_its_options_and_rejects_a_key_none_reads(tiny):
    from loaders import LoaderSpec, build, options_for

    assert options_for("torchvision", {"pool": "threads", "producers": 2}) == {"pool": "threads"}
    shared = LoaderSpec(batch_size=4, res=32, workers=2, options={"pool": "processes", "progress": False})
    with build("torchvision", "train", tiny, shared) as loader:
        assert loader.spec.options == {"pool": "processes"} and loader.describe()["pool"] == "processes"
    with build("synthetic", "train", tiny, shared) as loader:
        assert loader.spec.options == {}
    with pytest.raises(ValueError, match=r"^no loader reads option 'pol' \(torchvision: pool, chunk, task, decoder; ffcv: "):
        build("torchvision", "train", tiny, LoaderSpec(options={"pol": "threads"}))


def test_a_run_with_nothing_measured_exits_1_with_its_record_and_summary(tiny_root, tmp_path):
    """The CLI ends with os._exit (bench/run.py: exit_now): the records, the buffered stdout and
    the exit status still come out."""
    out = tmp_path / "r.jsonl"
    p = run("--mode", "loader", "--loader", "torchvision-gpu", "--data", str(tiny_root), "--out", str(out))
    assert p.returncode == 1, p.stderr
    (rec,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert rec["status"] == "unavailable" and rec["loader"] == "torchvision-gpu"
    assert "torchvision-gpu" in p.stdout and p.stdout.rstrip().splitlines()[-1].startswith(f"records appended to {out}")


EXIT_SCRIPT = """
import atexit, multiprocessing, sys, time
from pathlib import Path
def child(path):
    time.sleep(0.5)
    Path(path).write_text("done")
if __name__ == "__main__":
    multiprocessing.get_context("fork").Process(target=child, args=(sys.argv[1],)).start()  # not joined
    atexit.register(lambda: print("atexit ran"))
    sys.stdout.write("buffered, no newline")
    if sys.argv[2] == "ours":
        from bench.run import exit_now
        exit_now(3)
    sys.exit(3)
"""


@pytest.mark.parametrize("reader", ["reads", "gone"])
def test_exit_now_ends_like_the_interpreter(tmp_path, reader):
    """Same status, stdout, atexit handlers and joined child processes as CPython's own exit,
    with stdout read and with its reader gone (`| head`: CPython says 120)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered: the flush at exit writes
    seen = []
    for how in ("cpython", "ours"):
        done = tmp_path / f"{how}.txt"
        p = subprocess.Popen([sys.executable, "-c", EXIT_SCRIPT, str(done), how], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env={**env, "PYTHONPATH": str(REPO)})
        if reader == "gone":
            p.stdout.close()
        stdout = p.stdout.read() if reader == "reads" else b""
        seen.append((p.wait(timeout=60), stdout, done.read_text()))
    assert seen[0] == seen[1]
    assert seen[0][0] == (3 if reader == "reads" else 120)
    assert seen[0][1] == (b"buffered, no newlineatexit ran\n" if reader == "reads" else b"")
