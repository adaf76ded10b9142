"""Shared fixtures: tiny ImageFolder trees made in tmp dirs, caches kept out of ~/.cache."""
from __future__ import annotations

import os

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


