"""Install the DALI parts (bench/gpu/dali_parts.py) offline, on the GPU machine.

    python3 -m bench.gpu.dali_install --parts /tmp/dali-parts --target /tmp/dali-site --check
    eval "$(python3 -m bench.gpu.dali_install --parts /tmp/dali-parts --target /tmp/dali-site --env)"

Checks that every part named in MANIFEST.json is there with its size and sha256, then streams
the parts, joined, through xz and tar into --target (nothing joined on disk; a second run with
the same manifest finds the stamp and does nothing). Standard library only: it runs with the
GPU machine's python3, beside its own torch.

How `import nvidia.dali` then works with the machine's torch:
- PYTHONPATH gets the target first. `nvidia` is a namespace shared with the image's CUDA wheels
  (nvidia/cu13, nvidia/cudnn, ...): the target gets an nvidia/__init__.py that extends the
  package's path over every sys.path entry, so nvidia.dali comes from the target and the
  image's nvidia.* stay importable whichever of them is a regular package.
- DALI 2.x dlopens nvImageCodec (libnvimgcodec.so.0) and nvcomp through the RUNPATH of its
  libraries: $ORIGIN/../nvimgcodec, $ORIGIN/../libnvcomp/lib64, $ORIGIN/../cu13/lib,
  /usr/local/cuda/lib64 (read with readelf from the 2.4.0 wheel); nvImageCodec's nvJPEG
  extension finds libnvjpeg.so.13 in $ORIGIN/../../cu13/lib. The target keeps the wheels'
  layout (nvidia/dali, nvidia/nvimgcodec, nvidia/libnvcomp, nvidia/cu13/lib), so those resolve
  inside it. cuFFT and NPP, which DALI dlopens by soname for the few operators that use them,
  are the image's own (nvidia/cu13/lib beside torch): LD_LIBRARY_PATH lists those folders too.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

from .dali_parts import MANIFEST

STAMP = ".dali-installed"
SHIM = ("# Written by bench/gpu/dali_install.py: nvidia.* spread over several sys.path entries\n"
        "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")


class InstallError(Exception):
    """One line saying what is wrong and what to do."""


def read_manifest(parts: Path) -> dict:
    f = parts / MANIFEST
    if not f.is_file():
        raise InstallError(f"no {MANIFEST} in {parts}: copy the parts and {MANIFEST} from "
                           f"`python -m bench.gpu.dali_parts` there first")
    return json.loads(f.read_text())


def verify(parts: Path, manifest: dict) -> None:
    """Packed for this Python, and every part present with the size and sha256 the manifest gives."""
    here = f"cp{sys.version_info.major}{sys.version_info.minor}"
    if manifest.get("tag") != here:
        raise InstallError(f"the DALI parts in {parts} are for {manifest.get('tag')}, this python is {here}: "
                           f"pack them with `python -m bench.gpu.dali_parts --python-version "
                           f"{sys.version_info.major}.{sys.version_info.minor}`")
    names = [p["name"] for p in manifest["parts"]]
    missing = [n for n in names if not (parts / n).is_file()]
    if missing:
        have = sorted(p.name for p in parts.glob("dali-*.tar.xz.*"))
        raise InstallError(f"{len(missing)} of {len(names)} DALI parts missing in {parts}: "
                           f"{', '.join(missing)} (have: {', '.join(have) or 'none'}); copy them "
                           f"there with one device call each (README-gpu), then run this again")
    for p in manifest["parts"]:
        f = parts / p["name"]
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
        if f.stat().st_size != p["bytes"] or h.hexdigest() != p["sha256"]:
            raise InstallError(f"{f} is damaged or from another packing (size {f.stat().st_size}, "
                               f"manifest {p['bytes']}); copy it again")


class Joined:
    """The parts, in order, read as one file (no joined copy on disk)."""

    def __init__(self, files: list[Path]):
        self.files, self._f = list(files), None

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            if self._f is None:
                if not self.files:
                    break
                self._f = open(self.files.pop(0), "rb")
            chunk = self._f.read(-1 if n < 0 else n - len(out))
            out += chunk
            if not chunk or n < 0:  # this part is used up: on to the next
                self._f.close()
                self._f = None
        return bytes(out)

    def close(self) -> None:
        if self._f:
            self._f.close()


def unpack(parts: Path, target: Path, manifest: dict) -> bool:
    """Extract into target unless it already holds this manifest's packing; True if extracted."""
    stamp = target / STAMP
    if stamp.is_file() and stamp.read_text().strip() == manifest["sha256"]:
        return False
    target.mkdir(parents=True, exist_ok=True)
    src = Joined([parts / p["name"] for p in manifest["parts"]])
    try:
        with lzma.LZMAFile(src) as xz, tarfile.open(fileobj=xz, mode="r|") as tar:
            kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(target, **kw)
    except (lzma.LZMAError, tarfile.TarError, EOFError) as e:
        raise InstallError(f"the DALI parts in {parts} do not unpack ({type(e).__name__}: {e}); "
                           f"pack and copy them again") from None
    finally:
        src.close()
    (target / "nvidia").mkdir(exist_ok=True)
    (target / "nvidia" / "__init__.py").write_text(SHIM)
    stamp.write_text(manifest["sha256"] + "\n")
    return True


def environment(target: Path, base: dict | None = None) -> dict:
    """PYTHONPATH and LD_LIBRARY_PATH under which the target's DALI imports (see the docstring)."""
    base = dict(os.environ if base is None else base)
    ours = [target / "nvidia" / d for d in ("cu13/lib", "nvimgcodec", "libnvcomp/lib64")]
    image = [Path(p) / "nvidia" / "cu13" / "lib" for p in sys.path if p]
    libs = [str(p) for p in ours + image if p.is_dir()]

    def join(key, first):
        return os.pathsep.join(dict.fromkeys(first + [x for x in base.get(key, "").split(os.pathsep) if x]))
    return {"PYTHONPATH": join("PYTHONPATH", [str(target)]), "LD_LIBRARY_PATH": join("LD_LIBRARY_PATH", libs)}


# Import, then decode one JPEG on the CPU (nvImageCodec's CPU backend) and, with CUDA, "mixed".
CHECK = r"""
import io, sys, numpy as np
import nvidia.dali as dali, nvidia.dali.fn as fn, nvidia.dali.plugin.pytorch  # noqa: F401
from PIL import Image
buf = io.BytesIO(); Image.new("RGB", (20, 12), (200, 40, 10)).save(buf, "JPEG"); jpeg = np.frombuffer(buf.getvalue(), np.uint8)
import torch
devices = ["cpu"] + (["mixed"] if torch.cuda.is_available() else [])
for dev in devices:
    @dali.pipeline_def(batch_size=1, num_threads=1, device_id=0 if dev == "mixed" else None)
    def p():
        return fn.decoders.image(fn.external_source(source=lambda: [jpeg], batch=True), device=dev)
    pipe = p(); pipe.build(); out = pipe.run()[0]
    shape = out.as_cpu()[0].shape() if dev == "mixed" else out[0].shape()
    assert list(shape) == [12, 20, 3], shape
print(f"nvidia.dali {dali.__version__} from {dali.__path__[0]}: decode ok on {', '.join(devices)}")
"""


def check(target: Path) -> tuple[bool, str]:
    env = {**os.environ, **environment(target)}
    r = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300)
    if r.returncode == 0:
        return True, r.stdout.strip().splitlines()[-1]
    return False, "import nvidia.dali failed: " + ((r.stderr.strip().splitlines() or ["?"])[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m bench.gpu.dali_install", description=__doc__.splitlines()[0])
    ap.add_argument("--parts", type=Path, default=Path("/tmp/dali-parts"), help="folder holding the parts + MANIFEST.json")
    ap.add_argument("--target", type=Path, default=Path("/tmp/dali-site"), help="where DALI is unpacked")
    ap.add_argument("--env", action="store_true", help="print `export` lines for the shell (eval them)")
    ap.add_argument("--check", action="store_true", help="then import DALI and decode a JPEG in a child process")
    a = ap.parse_args(argv)
    log = (lambda m: print(m, file=sys.stderr)) if a.env else print
    try:
        manifest = read_manifest(a.parts)
        verify(a.parts, manifest)
        extracted = unpack(a.parts, a.target, manifest)
    except InstallError as e:
        log(f"dali_install: {e}")
        return 2
    log(f"dali_install: {'unpacked' if extracted else 'already unpacked'} {len(manifest['parts'])} parts "
        f"({manifest['tag']}) into {a.target}")
    if a.env:
        for k, v in environment(a.target).items():
            print(f"export {k}={shlex.quote(v)}")
    if a.check:
        ok, line = check(a.target)
        log(f"dali_install: {line}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
