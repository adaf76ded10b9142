"""`python -m bench.run --mode tune --loader NAME`: search workers/threads, prefetch depth and
batch size for loader-only throughput on this machine, within a time budget.

    python -m bench.run --mode tune --loader torchvision --seconds 60
    python -m bench.run --mode tune --loader dali --split val --seconds 30

Coordinate search (a full grid is too slow to be worth it): workers first (1 .. 2 x cores, at
the default prefetch and batch size), then prefetch (1, 2, 4) at the best workers, then batch
size (32, 64, 128, 256 around --batch-size) at the best of those, then each choice of the
backend's tunable options (an Option with tune=True in the registry, e.g. torchvision-gpu's
decoder: torchvision | nvimgcodec; a choice that cannot run here is a failed point, and the
search goes on). Each point builds the loader,
runs a short warm-up and times a few batches; the best three and the starting point are then
re-measured interleaved for up to three rounds, and the winner is the best median ratio to the
starting point in the same round (a lucky reading on a shared machine does not win alone).
--seconds is the whole budget (default 60 s); points left when it runs out are skipped. The
"tune" record holds every tried point and the best; the flags to use are printed.
"""
from __future__ import annotations

import statistics
import sys
import time

import loaders
from loaders.host import cpu_cores

from ..measure import StepMeter, timed_batches
from .context import passes

DEFAULT_BUDGET_S = 60.0


def measure_point(ctx, name: str, split: str, workers: int, prefetch: int, batch_size: int, seconds: float, warmup: int = 2,
                  options: dict | None = None) -> dict:
    """Loader-only images/sec of one configuration (build time not counted)."""
    spec = ctx.spec(name).with_(workers=workers, prefetch=prefetch, batch_size=batch_size)
    if options:
        spec = spec.with_(options={**spec.options, **options})
    t0 = time.perf_counter()
    with loaders.build(name, split, ctx.dataset, spec) as loader:
        build_s = time.perf_counter() - t0
        meter = StepMeter(warmup=warmup, device=ctx.device)
        for _ in timed_batches(passes(loader), meter, max_steps=None, seconds=seconds):
            pass
        m = meter.metrics()
    return {"workers": workers, "prefetch": prefetch, "batch_size": batch_size, "options": dict(options or {}),
            "images_per_sec": m["images_per_sec"],
            "p10": m.get("p10"), "p90": m.get("p90"), "steps": m["steps"], "build_s": round(build_s, 3)}


def tunable_options(name: str) -> list[dict]:
    """{} (the defaults) and each single choice of the backend's tune=True options."""
    backend = loaders.REGISTRY.get(name)
    opts = backend.options if backend else {}
    return [{}] + [{k: v} for k, o in opts.items() if getattr(o, "tune", False) for v in o.choices]


def candidates(cores: int, batch_size: int, name: str | None = None) -> dict[str, list]:
    workers = sorted({1, max(1, cores // 2), cores, cores + 1, 2 * cores} - {0})
    batches = sorted({32, 64, 128, 256, batch_size})
    grid = {"workers": workers, "prefetch": [1, 2, 4], "batch_size": batches}
    options = tunable_options(name) if name else [{}]
    if len(options) > 1:
        grid["options"] = options
    return grid


DIMS = ("workers", "prefetch", "batch_size", "options")


def flags(best: dict) -> str:
    out = f"--workers {best['workers']} --prefetch {best['prefetch']} --batch-size {best['batch_size']}"
    if best.get("options"):
        out += " --loader-options " + ",".join(f"{k}={v}" for k, v in best["options"].items())
    return out


def key(p: dict) -> tuple:
    return (p["workers"], p["prefetch"], p["batch_size"], tuple(sorted((p.get("options") or {}).items())))


class Search:
    """The points tried so far within a time budget; `per_point` seconds of timing each."""

    def __init__(self, ctx, name: str, split: str, budget: float, per_point: float, start: dict):
        self.ctx, self.name, self.split, self.per_point = ctx, name, split, per_point
        self.t_end = time.perf_counter() + budget
        self.tried: list[dict] = []
        self.start, self.best, self.skipped = dict(start), dict(start), 0

    def measure(self, p: dict) -> dict:
        return measure_point(self.ctx, self.name, self.split, p["workers"], p["prefetch"], p["batch_size"], self.per_point,
                             options=p.get("options"))

    def point(self, bar, **kw) -> dict | None:
        cfgp = {**self.best, **kw}
        done = [p for p in self.tried if key(p) == key(cfgp)]
        if done:
            return done[0]
        if time.perf_counter() + self.per_point > self.t_end:
            self.skipped += 1
            return None
        try:
            p = self.measure(cfgp)
        except Exception as e:  # noqa: BLE001 - a failing point (e.g. too many workers) is a row, the search goes on
            p = {**cfgp, "images_per_sec": 0.0, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        self.tried.append(p)
        bar.update()
        opts = "".join(f" {k}={v}" for k, v in (p.get("options") or {}).items())
        bar.set_postfix_str(f"w{p['workers']} p{p['prefetch']} b{p['batch_size']}{opts}: {p['images_per_sec']:.0f} img/s")
        return p

    def coordinates(self, grid: dict, bar) -> None:
        """Workers, then prefetch, then batch size (then the tunable options), each at the best
        of the previous ones."""
        for dim in (d for d in DIMS if d in grid):
            ok = [p for v in grid[dim] if (p := self.point(bar, **{dim: v})) and not p.get("error")]
            if ok:
                top = max(ok, key=lambda p: p["images_per_sec"])
                self.best = {k: top[k] for k in DIMS if k in top}

    def finals(self, bar, rounds: int = 3) -> None:
        """The best three and the start, interleaved round by round; each scored by its median
        ratio to the start in the same round (on a shared machine the load drifts during the
        search, which a single reading per point mistakes for a better configuration)."""
        ranked = sorted((p for p in self.tried if not p.get("error")), key=lambda p: -p["images_per_sec"])[:3]
        finalists = ranked + [p for p in self.tried if key(p) == key(self.start) and p not in ranked]
        for _ in range(rounds):
            if time.perf_counter() + len(finalists) * self.per_point > self.t_end:
                break
            row = {}
            for p in finalists:
                try:
                    row[key(p)] = self.measure(p)["images_per_sec"]
                except Exception:  # noqa: BLE001 - keep the first reading
                    continue
                bar.update()
            base = row.get(key(self.start))
            for p in finalists:
                if key(p) in row:
                    p.setdefault("repeats", []).append(row[key(p)])
                    if base:
                        p.setdefault("vs_start", []).append(round(row[key(p)] / base, 4))

    def winner(self) -> dict:
        for p in self.tried:
            p["score"] = round(statistics.median(p.get("repeats") or [p["images_per_sec"]]), 2)
            if p.get("vs_start"):
                p["vs_start_median"] = round(statistics.median(p["vs_start"]), 4)
        ok = [p for p in self.tried if not p.get("error")]
        if not ok:
            raise RuntimeError(f"tune {self.name}: no configuration ran ({self.tried[0].get('error') if self.tried else 'budget too small'})")
        rated = [p for p in ok if p.get("vs_start_median")]
        return max(rated, key=lambda p: p["vs_start_median"]) if rated else max(ok, key=lambda p: p["score"])


def run(ctx, name: str, arch=None) -> list[dict]:
    cfg = ctx.cfg
    split = "val" if cfg.run.split == "val" else "train"  # "both": tune on train
    budget = cfg.measure.seconds or DEFAULT_BUDGET_S
    cores = cpu_cores()
    grid = candidates(cores, cfg.data.batch_size, name)
    # Per point: a slice of the budget, at least 1.5 s of timing (a few batches on 2 cores).
    n_points = sum(len(v) for v in grid.values()) + 12
    start = {"workers": ctx.workers if ctx.workers else cores, "prefetch": cfg.data.prefetch, "batch_size": cfg.data.batch_size,
             "options": {}}
    search = Search(ctx, name, split, budget, max(1.5, 0.6 * budget / n_points), start)
    with ctx.bar(total=n_points, desc=f"tune {name} {split}", unit="point") as bar:
        search.coordinates(grid, bar)
        search.finals(bar)
    top = search.winner()
    best = {k: top[k] for k in DIMS if top.get(k) not in (None, {})}  # options only when a choice won
    metrics = {"images_per_sec": top["score"], "best": best, "flags": flags(best), "cores": cores, "split": split, "start": start,
               "best_vs_start": top.get("vs_start_median"), "points": search.tried, "skipped_points": search.skipped,
               "budget_s": budget, "per_point_s": round(search.per_point, 2)}
    gain = f", {top['vs_start_median']:.2f}x the start ({flags(start)})" if top.get("vs_start_median") else ""
    ctx.log(f"tune {name} ({split}, {cores} cores): best {top['score']:.0f} img/s with {flags(best)}{gain}")
    # The flags to use (stderr under --json, where stdout holds only records). A batch size
    # change alters the training recipe (LR scaling, BN): take it only for loader-bound runs.
    print(f"use: python -m bench.run --loader {name} {flags(best)}", file=sys.stderr if cfg.output.json else sys.stdout)
    return [ctx.record("tune", loader=name, variant=split, metrics=metrics)]
