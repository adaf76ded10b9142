"""Pack NVIDIA DALI (CUDA 13) for the GPU machine: parts of at most ~60 MiB, one per device call.

    python -m bench.gpu.dali_parts --out .gl/dali                  # for the GPU machine (3.12)
    python -m bench.gpu.dali_parts --out /tmp/p --python-version 3.11   # this machine's Python

Steps: `pip download --no-deps --only-binary=:all: --python-version X` of PACKAGES (or the
wheels already in --wheels), unpack them into one tree, trim what cannot be used there (other
Pythons' extension modules, C headers, nvcomp's command-line tool, nvImageCodec's nvTIFF and
nvJPEG2000 extensions), tar it (sorted, mtime 0,
so the same wheels give the same bytes), xz it and cut the stream into parts:
OUT/dali-cp312.tar.xz.00, .01, ... and OUT/MANIFEST.json (each part's size and sha256).
bench/gpu/dali_install.py joins them there. Run it in the checkout the session was started in
(the device tool carries that one), into .gl/ (git-ignored: the parts never enter the repo).

Why these packages: nvidia-dali-cuda130's METADATA asks for nvidia-nvimgcodec-cu13[all]
(DALI 2.x decodes through nvImageCodec, dlopened from $ORIGIN/../nvimgcodec), exactly
nvidia-libnvcomp-cu13 5.3.0.16, and astunparse, gast, optree, six, packaging, numpy, nvtx,
makefun, libcst; the GPU image has six, packaging and numpy, not the others. Of nvimgcodec's
[all] extra only nvidia-nvjpeg travels (its GPU JPEG decode, found through $ORIGIN/../cu13/lib);
nvjpeg2k and nvtiff (JPEG 2000, TIFF) are not needed for JPEG training sets. nvjpeg 13.0.x:
the CUDA release of the machine's driver and torch (cu130).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGES = (
    "nvidia-dali-cuda130==2.4.0", "nvidia-nvimgcodec-cu13==0.9.0.20", "nvidia-libnvcomp-cu13==5.3.0.16",
    "nvidia-nvjpeg==13.0.4.44", "astunparse==1.6.3", "gast==0.7.0", "optree==0.20.0", "nvtx==0.2.17",
    "makefun==1.16.0", "libcst==1.9.0",
)
# pip matches manylinux tags exactly: every tag these wheels are published under.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "any")
MANIFEST = "MANIFEST.json"
PART_MIB = 60
# A call carries the working tree too (~2 MiB): 60 MiB parts keep each call under its 64 MiB.
_EXT = re.compile(r"\.cpython-(\d+t?)-[^/]*\.so(\.\d+)*$")
# nvImageCodec's nvTIFF and nvJPEG2000 extensions: those libraries do not travel, and each
# extension prints [ERROR] lines at every start without them (TIFF still decodes through the
# libtiff extension, JPEG 2000 through OpenCV's).
DROP_PREFIXES = ("nvidia/libnvcomp/bin/", "nvidia/libnvcomp/include/", "nvidia/dali/include/",
                 "nvidia/nvimgcodec/include/", "nvidia/nvimgcodec/extensions/libnvtiff_ext",
                 "nvidia/nvimgcodec/extensions/libnvjpeg2k_ext")


def part_name(tag: str, i: int) -> str:
    return f"dali-{tag}.tar.xz.{i:02d}"


def keep(member: str, tag: str) -> bool:
    """Whether a wheel member is of use on a Python with ABI tag `tag` ("cp312" -> "312")."""
    if "__pycache__/" in member or member.startswith(DROP_PREFIXES):
        return False
    m = _EXT.search(member)
    return m is None or m.group(1) == tag.removeprefix("cp")


def download(dest: Path, python_version: str, packages=PACKAGES) -> list[Path]:
    """pip download the wheels for that Python (no deps: the list above is the closure)."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", python_version, "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    r = subprocess.run(cmd + list(packages), capture_output=True, text=True)
    if r.returncode:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"dali_parts: pip download failed ({tail}); check the network, or pass "
                         f"--wheels DIR holding the wheels already downloaded")
    return sorted(dest.glob("*.whl"))


def stage(wheels: list[Path], tag: str, root: Path) -> dict:
    """Unpack the wheels' kept members into root; return what was kept and trimmed."""
    kept = dropped = kept_bytes = dropped_bytes = 0
    for whl in wheels:
        if not zipfile.is_zipfile(whl):
            raise SystemExit(f"dali_parts: {whl} is not a wheel (a zip file): download it again")
        with zipfile.ZipFile(whl) as z:
            for info in z.infolist():
                if info.is_dir():
                    continue
                if not keep(info.filename, tag):
                    dropped += 1
                    dropped_bytes += info.file_size
                    continue
                path = Path(z.extract(info, root))
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    path.chmod(mode)
                kept += 1
                kept_bytes += info.file_size
    return {"files": kept, "bytes": kept_bytes, "trimmed_files": dropped, "trimmed_bytes": dropped_bytes}


class PartWriter:
    """A write-only file object that xz-compresses and cuts the stream into numbered parts."""

    def __init__(self, out: Path, tag: str, part_bytes: int, preset: int):
        self.out, self.tag, self.part_bytes = out, tag, part_bytes
        self.xz = lzma.LZMACompressor(format=lzma.FORMAT_XZ, preset=preset)
        self.parts: list[dict] = []
        self.whole = hashlib.sha256()
        self._f = None

    def _emit(self, data: bytes) -> None:
        while data:
            if self._f is None or self._f.tell() >= self.part_bytes:
                self._next()
            room = self.part_bytes - self._f.tell()
            chunk, data = data[:room], data[room:]
            self._f.write(chunk)
            self._sha.update(chunk)
            self.whole.update(chunk)

    def _next(self) -> None:
        self._close_part()
        name = part_name(self.tag, len(self.parts))
        self._f, self._sha = open(self.out / name, "wb"), hashlib.sha256()
        self.parts.append({"name": name})

    def _close_part(self) -> None:
        if self._f is not None:
            self.parts[-1].update(bytes=self._f.tell(), sha256=self._sha.hexdigest())
            self._f.close()
            self._f = None

    def write(self, data: bytes) -> int:
        self._emit(self.xz.compress(data))
        return len(data)

    def close(self) -> None:
        self._emit(self.xz.flush())
        self._close_part()


def _reproducible(ti: tarfile.TarInfo) -> tarfile.TarInfo:
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 0, 0, 0, "", ""
    return ti


def compress(root: Path, out: Path, tag: str, part_bytes: int, preset: int) -> PartWriter:
    """tar (sorted paths) -> xz -> parts of at most part_bytes."""
    w = PartWriter(out, tag, part_bytes, preset)
    with tarfile.open(fileobj=w, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            tar.add(path, arcname=path.relative_to(root).as_posix(), filter=_reproducible)
    w.close()
    return w


def pack(out: Path, python_version: str, wheels_dir: Path | None, part_mib: float = PART_MIB,
         preset: int = 9) -> dict:
    """The whole packing step; returns the manifest it wrote."""
    tag = "cp" + python_version.replace(".", "")
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("dali-*.tar.xz.*"), out / MANIFEST]:  # a half-made set never looks complete
        old.unlink(missing_ok=True)
    # Downloads beside OUT, not in it: OUT holds exactly what the device calls carry.
    wheels = sorted(wheels_dir.glob("*.whl")) if wheels_dir else download(out.parent / f"{out.name}-wheels-{tag}", python_version)
    if not wheels:
        raise SystemExit(f"dali_parts: no wheels in {wheels_dir}; download them first or drop --wheels")
    with tempfile.TemporaryDirectory(prefix="dali-stage-") as tmp:
        stats = stage(wheels, tag, Path(tmp))
        w = compress(Path(tmp), out, tag, int(part_mib * 2**20), preset)
    manifest = {"python": python_version, "tag": tag, "wheels": [p.name for p in wheels],
                "parts": w.parts, "xz_bytes": sum(p["bytes"] for p in w.parts),
                "sha256": w.whole.hexdigest(), "xz_preset": preset, **stats}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu.dali_parts", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(".gl/dali"), help="folder for the parts (git-ignored)")
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python (3.12)")
    ap.add_argument("--wheels", type=Path, help="use the wheels in this folder instead of downloading")
    ap.add_argument("--part-mib", type=float, default=PART_MIB, help="largest part, MiB")
    ap.add_argument("--preset", type=int, default=9, choices=range(10), help="xz preset")
    a = ap.parse_args(argv)
    m = pack(a.out, a.python_version, a.wheels, a.part_mib, a.preset)
    mib = 2**20
    print(f"dali_parts: {m['files']} files, {m['bytes'] / mib:.0f} MiB unpacked "
          f"({m['trimmed_files']} files, {m['trimmed_bytes'] / mib:.0f} MiB trimmed) -> "
          f"{m['xz_bytes'] / mib:.1f} MiB xz in {len(m['parts'])} parts under {a.out}:")
    for p in m["parts"]:
        print(f"  {p['name']}  {p['bytes'] / mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
