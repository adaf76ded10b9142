"""The schema-2 migration: per-run facts out of config, output keys dropped, per-step
percentiles renamed, idempotent, unreadable lines kept; the committed records are migrated."""
from __future__ import annotations

import json
from pathlib import Path

from bench.results.migrate import main, migrate_text
from bench.results.schema import BACKEND_FACTS, OUTPUT_KEYS, SCHEMA, upgrade

REPO = Path(__file__).resolve().parent.parent

OLD_FFCV = {"schema": 1, "kind": "loader", "loader": "ffcv", "variant": "train",
            "config": {"batch_size": 64, "out": "/root/out/gpu.jsonl", "json": False, "progress": True,
                       "backend": {"backend": "ffcv", "workers": 2, "order": "random", "os_cache": True,
                                   "write_policy": {"jpeg_quality": 90}, "beton": "/root/.cache/x.beton", "beton_bytes": 41962240,
                                   "convert_s": 2.884, "beton_cached": True, "construct_s": 0.549, "first_batch_s": 8.626}},
            "metrics": {"images_per_sec": 1286.94, "p10": 908.0, "p50": 1337.4, "p90": 3028.8, "first_batch_s": 9.2}}
OLD_GPU = {"schema": 1, "kind": "train", "loader": "torchvision-gpu",
           "config": {"backend": {"backend": "torchvision-gpu", "workers": 16, "producers": 2, "decode_device": "cuda:0",
                                  "device_decoded": 10240, "cpu_fallbacks": 0, "fallback_reasons": {}, "device_decode_errors": 0,
                                  "read_wait_s": 1.2, "decode_s": 2.6, "augment_s": 4.9}},
           "metrics": {"images_per_sec": 2738.5}}
OLD_BENCH = {"schema": 1, "kind": "benchmark", "config": {"benchmark": "t::x", "pytest_benchmark": {"datetime": "2026-11-26T15:33"}},
             "metrics": {"images_per_sec": 1.0}}


def test_facts_move_to_metrics_and_settings_stay():
    new = upgrade(OLD_FFCV)
    assert new["schema"] == SCHEMA == 2 and OLD_FFCV["schema"] == 1  # the input is not changed
    assert new["config"] == {"batch_size": 64, "backend": {"backend": "ffcv", "workers": 2, "order": "random", "os_cache": True,
                                                            "write_policy": {"jpeg_quality": 90}}}
    assert new["metrics"]["backend"] == {"beton": "/root/.cache/x.beton", "beton_bytes": 41962240, "convert_s": 2.884,
                                         "beton_cached": True, "construct_s": 0.549, "first_batch_s": 8.626}
    # the harness's own first-batch time stays where it was; per-step percentiles are renamed
    assert {k: new["metrics"][k] for k in ("first_batch_s", "step_p10", "step_p50", "step_p90")} == {
        "first_batch_s": 9.2, "step_p10": 908.0, "step_p50": 1337.4, "step_p90": 3028.8}
    assert not {"p10", "p50", "p90"} & set(new["metrics"])
    gpu = upgrade(OLD_GPU)
    assert gpu["config"]["backend"] == {"backend": "torchvision-gpu", "workers": 16, "producers": 2, "decode_device": "cuda:0"}
    assert set(gpu["metrics"]["backend"]) == {"device_decoded", "cpu_fallbacks", "fallback_reasons", "device_decode_errors",
                                              "read_wait_s", "decode_s", "augment_s"}
    bench = upgrade(OLD_BENCH)
    assert bench["config"] == {"benchmark": "t::x"} and bench["metrics"]["pytest_benchmark"] == {"datetime": "2026-11-26T15:33"}


def test_two_runs_of_one_command_get_identical_config():
    other = json.loads(json.dumps(OLD_FFCV))
    other["config"]["backend"].update(beton_cached=False, construct_s=3.1, first_batch_s=12.0, convert_s=3.0)
    other["config"]["out"] = "elsewhere.jsonl"
    assert upgrade(other)["config"] == upgrade(OLD_FFCV)["config"]


def test_idempotent_and_unreadable_lines_kept():
    text = "\n".join([json.dumps(OLD_FFCV), '{"truncated', json.dumps(OLD_GPU)]) + "\n"
    once, changed, bad = migrate_text(text)
    assert (changed, bad) == (2, [2]) and once.splitlines()[1] == '{"truncated'
    twice, changed2, _ = migrate_text(once)
    assert twice == once and changed2 == 0
    assert upgrade(upgrade(OLD_FFCV)) == upgrade(OLD_FFCV)


def test_cli_rewrites_then_check_passes(tmp_path, capsys):
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps(OLD_FFCV) + "\n")
    assert main([str(f), "--check"]) == 1 and json.loads(f.read_text())["schema"] == 1  # --check changes nothing
    assert main([str(f)]) == 0 and json.loads(f.read_text())["schema"] == 2
    assert main([str(f), "--check"]) == 0
    assert "0 records need migrating" in capsys.readouterr().out
    assert main([str(tmp_path / "missing.jsonl")]) == 2


def test_no_fact_is_an_option_a_user_sets_and_output_keys_are_run_flags():

    import loaders
    from bench.cli.config import FIELDS

    read = {k for b in loaders.REGISTRY.values() for k in b.options}  # what a user can set per backend
    assert not read & set(BACKEND_FACTS)
    assert set(OUTPUT_KEYS) <= set(FIELDS)  # top-level run flags, not backend options


def test_committed_records_are_migrated():
    files = sorted((REPO / "results").glob("*.jsonl"))
    assert files and main([str(f) for f in files] + ["--check"]) == 0
