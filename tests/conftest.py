"""Shared fixtures: tiny ImageFolder trees made in tmp dirs, caches kept out of ~/.cache."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import make_imagefolder


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test's caches (manifests, embedded data, .beton files) live in one tmp dir."""
    old = os.environ.get("LOADERBENCH_DATA")
    os.environ["LOADERBENCH_DATA"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("LOADERBENCH_DATA", None)
    else:
        os.environ["LOADERBENCH_DATA"] = old


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # pyproject's addopts disable benchmarks for the normal run (each case runs once, untimed);
    # `pytest --benchmark-only` turns timing back on instead of refusing the combination.
    if config.getoption("benchmark_only", False):
        config.option.benchmark_disable = False


@pytest.fixture
def dry_run_cuda_backends(monkeypatch):
    """CUDA-only backends (torchvision-gpu) run their whole code path on the CPU here (their
    testing mode), so that the contract suite covers every registered backend."""
    if not torch.cuda.is_available():
        from loaders.torchvision_gpu import CPU_DRY_RUN

        monkeypatch.setenv(CPU_DRY_RUN, "1")


def pytest_collection_modifyitems(config, items):
    if config.getoption("benchmark_only", False):
        # Only the benchmark cases are collected (pytest-benchmark would list every other test
        # as skipped, one line each).
        keep = [i for i in items if "benchmark" in getattr(i, "fixturenames", ())]
        dropped = [i for i in items if "benchmark" not in getattr(i, "fixturenames", ())]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny(tiny_root):
    from loaders.datasets import scan

    return scan(tiny_root, progress=False)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Under --benchmark-only, what the cases measured (their extra_info): images/sec with the
    spread over rounds, and every ratio, beside pytest-benchmark's seconds per round."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    tr = terminalreporter
    tr.write_sep("-", "what the benchmarks measured (extra_info; medians over rounds)")
    for b in session.benchmarks:
        info = b.extra_info
        parts = []
        if "images_per_sec" in info:
            spread = f" [{info['images_per_sec_min']:,.0f}-{info['images_per_sec_max']:,.0f}]" if "images_per_sec_min" in info else ""
            parts.append(f"{info['images_per_sec']:,.0f} img/s{spread}")
        parts += [f"{k.replace('_images_per_sec', '')} {v:,.0f} img/s" for k, v in info.items() if k.endswith("_images_per_sec")]
        parts += [f"{k} {v:.3f}" for k, v in info.items() if ("ratio" in k or "_over_" in k or k.endswith("_vs")) and isinstance(v, float)]
        parts += [f"{k} {v}" for k, v in info.items() if k in ("files_per_sec", "seconds_median")]
        tr.write_line(f"{b.name:<60} " + ("; ".join(parts) or "-"))
