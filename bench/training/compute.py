"""Where and in what precision the model runs: device, AMP dtype, seeds, the model itself
(channels-last, optional BlurPool) and torch.compile with an eager fallback."""
from __future__ import annotations

import contextlib
import random

import numpy as np
import torch
import torch.nn as nn


class DeviceError(ValueError):
    """The asked-for device is not here: one line, what to use instead."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda asked for, but CUDA is not available here; use --device cpu (or auto)")
    return dev


def cpu_has_bf16() -> bool:
    """Native bf16 (AVX512-BF16 or AMX): there bf16 autocast is faster than fp32; elsewhere it
    is emulated and slower, so `auto` falls back to fp32."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else None


def dtype_name(amp: torch.dtype | None) -> str:
    """What the loaders hand the model: the AMP dtype's name, float32 without AMP."""
    return {None: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[amp]


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(arch: str, num_classes: int, res: int, device, channels_last=True, blurpool=False) -> nn.Module:
    import models  # torchvision.models costs ~2 s to import: only when a model is built

    model = models.create(arch, num_classes, res=res, blurpool=blurpool).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


class CompileFallback(nn.Module):
    """torch.compile'd model that falls back to eager, with one message, if compiling fails.

    Compilation happens on the first real batch (in the caller's warm-up), with the real
    shape and mode: checking it on a dummy batch would compile for the wrong shape and mode
    and recompile on the first step.
    """

    def __init__(self, model: nn.Module, log=print, compile_fn=torch.compile):
        super().__init__()
        self.module = model
        self.compiled = compile_fn(model)
        self.failed = False
        self.log = log

    def forward(self, *args, **kw):
        if not self.failed:
            try:
                return self.compiled(*args, **kw)
            except Exception as e:  # noqa: BLE001 - any compiler failure means: run eager
                self.failed = True
                first = str(e).splitlines()[0][:160] if str(e) else ""
                self.log(f"note: torch.compile failed ({type(e).__name__}: {first}); running eager")
        return self.module(*args, **kw)
