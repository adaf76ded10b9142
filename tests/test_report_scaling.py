"""`--mode scaling`: the curves the report's planning table reads."""
from __future__ import annotations

import contextlib
import json

import loaders
from bench.cli.config import RunConfig
from bench.harness import scaling_mode as scaling
from bench.results import make_record
from loaders.host import cpu_cores
from loaders.spec import LoaderSpec
from tests.test_cli import run


def test_worker_counts():
    assert scaling.worker_counts(1) == [1]
    assert scaling.worker_counts(2) == [1, 2]
    assert scaling.worker_counts(6) == [1, 2, 4, 6]
    assert scaling.worker_counts(16) == [1, 2, 4, 8, 16]


def test_scaling_mode_writes_one_record_per_worker_count(tiny_root, tmp_path):
    out = tmp_path / "s.jsonl"
    p = run("--mode", "scaling", "--loader", "torchvision", "--data", str(tiny_root), "--steps", "2", "--warmup", "1",
            "--batch-size", "4", "--res", "32", "--out", str(out))
    assert p.returncode == 0, p.stderr
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    counts = scaling.worker_counts(cpu_cores())
    assert [r["config"]["workers"] for r in recs] == [r["metrics"]["workers"] for r in recs] == counts
    for r in recs:
        assert (r["kind"], r["variant"], r["status"], r["schema"]) == ("scaling", "train", "ok", 2)
        assert r["metrics"]["images_per_sec"] > 0 and r["metrics"]["steps"] == 2
        assert r["metrics"]["window_steps"] >= 1  # percentiles over windows of steps, never single prefetched steps
        assert r["config"]["backend"]["workers"] == r["config"]["workers"]


class FakeCtx:
    """The part of bench.harness.context.Context that scaling_mode uses."""

    def __init__(self, dataset, cfg):
        self.dataset, self.cfg, self.device, self.logged = dataset, cfg, "cpu", []

    def spec(self, name):
        return LoaderSpec(batch_size=4, res=32, val_res=32, workers=1)

    def resolved(self, loader=None, arch=None, **extra):
        return {"batch_size": 4, "res": 32, "loader": loader, **extra}

    def record(self, kind, loader=None, variant=None, metrics=None, config=None, **kw):
        return make_record(kind, loader=loader, variant=variant, metrics=metrics, config=config, **kw)

    def log(self, msg):
        self.logged.append(msg)

    def bar(self, **kw):
        return contextlib.nullcontext(type("Bar", (), {"update": lambda self, n=1: None})())


def test_a_failing_point_becomes_an_error_record_and_the_curve_goes_on(tiny, monkeypatch):
    real = loaders.build

    def build(name, split, dataset, spec):
        if spec.workers == 1:
            raise RuntimeError("worker pool could not start\nsecond line")
        return real(name, split, dataset, spec)

    monkeypatch.setattr(scaling.loaders, "build", build)
    monkeypatch.setattr(scaling, "cpu_cores", lambda: 2)
    ctx = FakeCtx(tiny, RunConfig.of(steps=2, warmup=1, split="train"))
    recs = scaling.run(ctx, "torchvision")
    assert [(r["metrics"]["workers"], r["status"]) for r in recs] == [(1, "error"), (2, "ok")]
    assert recs[0]["error"] == "RuntimeError: worker pool could not start"
    assert any("at 1 workers: RuntimeError" in m for m in ctx.logged)
