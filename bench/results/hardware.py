"""Hardware fingerprint: what every result record says about the machine it came from."""
from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import platform
import re
import subprocess
from functools import lru_cache

from loaders.host import cpu_cores


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


def _driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


@lru_cache(maxsize=1)
def fingerprint() -> dict:
    import torch

    gpu = {"gpu": None, "gpu_count": 0, "gpu_mem_gb": None, "driver": None, "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu.update(gpu=props.name, gpu_count=torch.cuda.device_count(), gpu_mem_gb=round(props.total_memory / 2**30, 1), driver=_driver())
    fp = {
        "cpu": _cpu_model(),
        "cores": cpu_cores(),
        "ram_gb": _ram_gb(),
        **gpu,
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "dali": _version("nvidia-dali-cuda120") or _version("nvidia-dali-cuda130"),
        "ffcv": _version("ffcv"),
        "pillow": _version("pillow"),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }
    fp["label"] = machine_label(fp)
    fp["id"] = hashlib.sha1(f"{fp['cpu']}|{fp['cores']}|{fp['gpu']}|{fp['gpu_count']}".encode()).hexdigest()[:10]
    return fp


def machine_label(fp: dict) -> str:
    """A readable name: 'NVIDIA H100 80GB HBM3 x1' or 'AMD EPYC 9R14 (2 cores)'."""
    cores = f"{fp.get('cores') or '?'} cores"  # a hand-written record may lack a field
    if fp.get("gpu"):
        return f"{fp['gpu']} x{fp.get('gpu_count') or 1} ({cores})"
    return f"{fp.get('cpu') or fp.get('id')} ({cores})"


def slug(fp: dict | None = None) -> str:
    fp = fp or fingerprint()
    s = re.sub(r"[^a-z0-9]+", "-", machine_label(fp).lower()).strip("-")
    return re.sub(r"-+", "-", s)[:60]
