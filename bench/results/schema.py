"""The record schema (2) and how a record of an older one is brought to it.

Schema 2 separates what defines a configuration from what one run of it observed:
`config` holds the resolved run settings and, under `config.backend`, the backend's settings;
per-run facts go under `metrics` (the backend's under `metrics.backend`). Two runs of the same
command then have identical `config`, whatever their cache state or timings.

From schema 1, `upgrade`
  * moves each key of BACKEND_FACTS from `config.backend` to `metrics.backend`;
  * moves `config.pytest_benchmark` (when the benchmark ran, its commit) to
    `metrics.pytest_benchmark`;
  * drops OUTPUT_KEYS from `config`: they say where the output went (the file the record sits
    in says it better), not what was measured;
  * renames the per-step percentiles `p10/p50/p90` to `step_p10/step_p50/step_p90`: they were
    the rates of single steps, and a prefetched batch "arrives" in microseconds, so they are
    no throughput percentiles (schema 2 computes p10/p50/p90 over windows of several steps);
  * sets `schema` to 2.
Nothing is estimated: metrics that schema 1 lacked (steady-state rate, stall time) stay absent.
Upgrading a schema-2 record returns it unchanged. Every reader upgrades in memory
(bench.results.load); `python -m bench.results.migrate` rewrites the files.
"""
from __future__ import annotations

import copy

SCHEMA = 2

# Per-run facts a backend reported beside its settings. Each is an outcome of one run, not a
# choice: two runs of the same command differ in it, so kept in `config` it would split one
# configuration into as many as there were runs.
BACKEND_FACTS = {
    "construct_s": "seconds to construct the loader: depends on caches and numba's compile cache",
    "first_batch_s": "seconds to the first batch: warm-up, compile and page-cache state of this run",
    "build_s": "seconds to build the loader in this run",
    "warm_s": "seconds the construction waited for the first batch (FFCV: numba's compile)",
    "passes_prefetched": "passes whose first batches were in flight before they started (cross-epoch prefetch)",
    "convert_s": "seconds the dataset conversion took (whenever it ran; repeated from the cache)",
    "beton_cached": "whether this run found the converted file in the cache",
    "beton": "where the converted file lives: a cache path of this machine",
    "beton_bytes": "size of the converted file: an outcome of the write settings",
    "device_decoded": "images this run decoded on the device",
    "cpu_fallbacks": "images this run sent back to the host decoder",
    "fallback_reasons": "why those images fell back (counts per reason)",
    "device_decode_errors": "device decode failures in this run",
    "read_wait_s": "stage timing: seconds the producers waited on file reads",
    "decode_s": "stage timing: seconds spent decoding",
    "augment_s": "stage timing: seconds spent cropping and resizing",
    "workers_requested": "the worker count asked for when the backend clamped it (the setting is `workers`)",
    "dali": "the library version: an environment fact (also in hardware.dali)",
}
# Where the output went, not what was measured: dropped from `config`.
OUTPUT_KEYS = ("out", "json", "progress")
STEP_PERCENTILES = {"p10": "step_p10", "p50": "step_p50", "p90": "step_p90"}


def split_backend(backend: dict) -> tuple[dict, dict]:
    """(settings, facts) of a backend's self-description."""
    settings = {k: v for k, v in backend.items() if k not in BACKEND_FACTS}
    facts = {k: v for k, v in backend.items() if k in BACKEND_FACTS}
    return settings, facts


def clean(config: dict, metrics: dict) -> tuple[dict, dict]:
    """`config` with every known per-run fact moved into `metrics` (new dicts; idempotent).
    Applied to every new record too, so a harness that still mixes them writes clean records."""
    config, metrics = dict(config or {}), dict(metrics or {})
    if isinstance(config.get("backend"), dict):
        config["backend"], facts = split_backend(config["backend"])
        if facts:
            metrics["backend"] = {**facts, **(metrics.get("backend") or {})}
    if isinstance(config.get("pytest_benchmark"), dict):
        metrics["pytest_benchmark"] = config.pop("pytest_benchmark")
    for k in OUTPUT_KEYS:
        config.pop(k, None)
    return config, metrics


def upgrade(rec: dict) -> dict:
    """The record in schema 2 (a new dict; the input is not changed)."""
    if int(rec.get("schema") or 1) >= SCHEMA:
        return rec
    out = copy.deepcopy(rec)
    metrics = {STEP_PERCENTILES.get(k, k): v for k, v in (out.get("metrics") or {}).items()}
    out["config"], out["metrics"] = clean(out.get("config") or {}, metrics)
    out["schema"] = SCHEMA
    return out
