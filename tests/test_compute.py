"""Core split, compile fallback and the single-process communicator."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from bench.harness.cores import plan_cores
from bench.training.comm import Single, communicator
from bench.training.compute import CompileFallback, DeviceError, resolve_amp, resolve_device


@pytest.mark.parametrize("mode,workers,threads,device,cores,world,expected", [
    ("train", None, None, "cpu", 2, 1, (1, 1)),      # CPU training: half the cores load, the rest compute
    ("train", None, None, "cpu", 8, 1, (4, 4)),
    ("train", None, None, "cpu", 1, 1, (0, 1)),      # one core: load in the main process
    ("train", 3, None, "cpu", 8, 1, (3, 5)),         # explicit workers: compute takes the rest
    ("loader", None, None, "cpu", 8, 1, (8, 1)),     # loader-only: every core loads
    ("train", None, None, "cuda", 16, 1, (16, 4)),   # GPU: the CPU only loads
    ("train", None, None, "cuda", 16, 2, (8, 2)),    # two ranks on one host split its cores
    ("train", None, 6, "cpu", 8, 1, (4, 6)),
])
def test_plan_cores(mode, workers, threads, device, cores, world, expected):
    assert plan_cores(mode, workers, threads, device, cores=cores, local_world=world) == expected


def test_compile_fallback_runs_eager_after_one_message():
    messages = []

    def broken_compile(model):
        def run(*a, **kw):
            raise RuntimeError("inductor: no C compiler\nmore detail")
        return run

    model = nn.Linear(3, 2)
    wrapped = CompileFallback(model, log=messages.append, compile_fn=broken_compile)
    x = torch.randn(4, 3)
    torch.testing.assert_close(wrapped(x), model(x))
    torch.testing.assert_close(wrapped(x), model(x))
    assert wrapped.failed and messages == ["note: torch.compile failed (RuntimeError: inductor: no C compiler); running eager"]


def test_compile_fallback_uses_the_compiled_model_when_it_works():
    calls = []
    model = nn.Linear(3, 2)
    wrapped = CompileFallback(model, log=print, compile_fn=lambda m: (lambda x: calls.append(1) or m(x) * 2))
    x = torch.randn(1, 3)
    torch.testing.assert_close(wrapped(x), model(x) * 2)
    assert calls == [1] and not wrapped.failed


def test_single_process_communicator_is_the_identity(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    comm = communicator("auto")
    assert isinstance(comm, Single) and comm.is_main and comm.world == 1
    t = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert comm.sum(t) is t and comm.sum(3.5) == 3.5 and comm.gather(0.25) == [0.25]
    model = nn.Linear(2, 2)
    assert comm.wrap(model) is model
    with comm.main_first():
        pass


def test_devices_and_amp():
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="--device cpu"):
            resolve_device("cuda")
    assert resolve_amp("off", torch.device("cpu")) is None
    assert resolve_amp("fp16", torch.device("cpu")) is torch.float16
