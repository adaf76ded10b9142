"""Loader registry: one contract, interchangeable backends.

    from loaders import build, available
    with build("torchvision", "train", dataset, spec) as loader:
        for images, labels in loader: ...

Backends are imported lazily, so a missing optional library (DALI, FFCV) shows up in
`available()` with the reason and the install command instead of failing at import; and
importing the registry imports no torch (the CLI answers --help and bad flags fast).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from .options import Option
from .spec import LoaderSpec

# Names this package hands on, imported on first use (they import torch).
_LAZY = {"Loader": "base", "normalize": "normalize", "DataError": "datasets", "Dataset": "datasets", "resolve": "datasets"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class BackendUnavailable(RuntimeError):
    """The backend's library is missing or cannot run here; the message says how to fix it."""


@dataclass(frozen=True)
class Backend:
    name: str
    module: str  # loaders.<module>, imported on first use
    cls: str
    kwargs: dict = field(default_factory=dict)
    summary: str = ""
    needs_cuda: bool = False  # only usable on a CUDA machine (tested there, `gpu` marker)
    options: dict = field(default_factory=dict)  # the spec.options keys it reads: key -> Option
    # "loader": a real input pipeline, measured and compared; "ceiling": no input work at all
    # (the compute-only rate that every real loader's training throughput is divided by).
    role: str = "loader"


REGISTRY: dict[str, Backend] = {}


ROLES = ("loader", "ceiling")


def register(name: str, module: str, cls: str, summary: str = "", needs_cuda: bool = False,
             options: dict | None = None, role: str = "loader", **kwargs) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    REGISTRY[name] = Backend(name, module, cls, kwargs, summary, needs_cuda, dict(options or {}), role)


register("synthetic", "synthetic", "SyntheticLoader", "random batches made once on the device: the compute-only ceiling",
         role="ceiling")
register("torchvision", "torchvision", "TorchvisionLoader",
         "libjpeg-turbo decode in a main-process thread pool (or DataLoader workers), uint8 batches, device normalise",
         options={"pool": Option(str, "threads: a pool in the main process; processes: DataLoader workers (default: threads up to 4 workers)",
                                 ("threads", "processes")),
                  "chunk": Option(int, "processes: samples per worker task (default: the batch)", low=1),
                  "task": Option(int, "threads: samples per thread task (default 64)", low=1),
                  "decoder": Option(str, "auto: simplejpeg/region decode; pil: PIL decode and resize only", ("auto", "pil"))})
register("dali", "dali", "DaliLoader", "NVIDIA DALI: GPU (mixed) decode when CUDA is there, CPU pipeline otherwise", device="auto")
register("dali-cpu", "dali", "DaliLoader", "NVIDIA DALI, CPU pipeline forced (even on a GPU machine)", device="cpu")
register("ffcv", "ffcv", "FfcvLoader", "FFCV .beton (converted once, cached beside the manifest)",
         options={"write_mode": Option(str, "how images are stored in the .beton", ("raw", "jpg", "smart", "proportion")),
                  "max_resolution": Option(int, "longest side stored (none: full size)", low=1, high=65535, none_ok=True),
                  "jpeg_quality": Option(int, "JPEG quality of stored images", low=1, high=100),
                  "compress_probability": Option(float, "write_mode=proportion: share stored as JPEG", low=0, high=1, none_ok=True),
                  "order": Option(str, "train order: ours (seed, epoch) or FFCV's QUASI_RANDOM", ("random", "quasi_random")),
                  "os_cache": Option(bool, "read the .beton through the OS page cache"),
                  "batches_ahead": Option(int, "batches FFCV prepares ahead", low=1),
                  "progress": Option(bool, "conversion progress bar")})
register("torchvision-gpu", "torchvision_gpu", "TorchvisionGpuLoader",
         "torchvision.io.decode_jpeg on the GPU (nvJPEG, batched), crop/resize/flip on the device; CPU fallback for CMYK/PNG",
         needs_cuda=True,
         options={"producers": Option(int, "producer threads building batches on the device", low=1),
                  "decoder": Option(str, "torchvision: nvJPEG via decode_jpeg; nvimgcodec: nvImageCodec (hardware JPEG engines)",
                                    ("torchvision", "nvimgcodec"), tune=True),
                  "augment": Option(str, "batched: the whole batch's crop/resize/flip in a few ops; per-image: one resize per "
                                    "image; auto: batched on CUDA, per-image on the CPU", ("auto", "batched", "per-image")),
                  "ahead": Option(bool, "start the next pass's first batches before this one ends")})


def option_problems(names: list[str], options: dict) -> list[str]:
    """One line per option the selected backends cannot take: a key none of them reads (a
    typo), or a value the backend that reads it does not allow."""
    selected = [REGISTRY[n] for n in names if n in REGISTRY]
    out = []
    for key, value in options.items():
        readers = [b for b in selected if key in b.options]
        if not readers:
            takes = "; ".join(f"{b.name}: {', '.join(b.options)}" for b in selected if b.options) or "none of them takes options"
            out.append(f"--loader-options {key}: no selected loader reads it ({takes})")
        for b in readers:
            why = b.options[key].problem(value)
            if why:
                out.append(f"--loader-options {key}={value}: {b.name}'s {key} {why}")
    return out


def options_for(name: str, options: dict) -> dict:
    """The part of `options` that backend `name` reads (a sweep over loaders shares one set)."""
    backend = REGISTRY.get(name)
    return {k: v for k, v in options.items() if backend and k in backend.options}


def role(name: str) -> str | None:
    """"loader" or "ceiling" for a registered backend; None for a name the registry lacks."""
    backend = REGISTRY.get(name)
    return backend.role if backend else None


def ceiling() -> str:
    """The backend whose training throughput is the compute-only ceiling."""
    return next(n for n, b in REGISTRY.items() if b.role == "ceiling")


def names(runnable_here: bool = False) -> list[str]:
    """Registered backends; with runnable_here, without those that need CUDA on a machine
    that has none."""
    if not runnable_here:
        return list(REGISTRY)
    import torch

    return [n for n, b in REGISTRY.items() if not b.needs_cuda or torch.cuda.is_available()]


def _module(backend: Backend):
    return importlib.import_module(f"loaders.{backend.module}")


def why_unavailable(name: str) -> str | None:
    if name not in REGISTRY:
        return f"unknown loader {name!r}; choose from {', '.join(REGISTRY)}"
    backend = REGISTRY[name]
    try:
        mod = _module(backend)
    except ImportError as e:
        return f"loaders.{backend.module} is not there yet ({e})"
    check = getattr(mod, "unavailable_reason", None)
    return check(**backend.kwargs) if check else None


def available() -> dict[str, str | None]:
    """{name: None if usable here, else one line: why not and how to fix it}."""
    return {name: why_unavailable(name) for name in REGISTRY}


def build(name: str, split: str, dataset: Dataset, spec: LoaderSpec) -> Loader:
    reason = why_unavailable(name)
    if reason:
        raise BackendUnavailable(f"loader {name!r} unavailable: {reason}")
    backend = REGISTRY[name]
    if spec.options:
        # One spec can serve every backend (swap the loader, keep the spec): each gets the keys
        # it reads; a key that no backend reads is a typo, and an error.
        unknown = sorted(set(spec.options) - {k for b in REGISTRY.values() for k in b.options})
        if unknown:
            takes = "; ".join(f"{b.name}: {', '.join(b.options)}" for b in REGISTRY.values() if b.options)
            raise ValueError(f"no loader reads option {', '.join(map(repr, unknown))} ({takes})")
        spec = spec.with_(options=options_for(name, spec.options))
        bad = option_problems([name], spec.options)
        if bad:
            raise ValueError(bad[0].replace("--loader-options ", "option "))
    loader = getattr(_module(backend), backend.cls)(split, dataset, spec, **backend.kwargs)
    loader.name = name  # one class may serve several registry entries (dali, dali-cpu)
    return loader


__all__ = ["BackendUnavailable", "DataError", "Dataset", "Loader", "LoaderSpec", "available", "build", "names", "normalize",
           "option_problems", "options_for", "register", "resolve", "role", "ceiling"]
