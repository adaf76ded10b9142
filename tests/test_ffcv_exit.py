"""No noise at exit after FFCV conversions (issue 15.7): FFCV mutated numba's shared array types
(loaders/ffcv_types.py), which made a numba finalizer raise KeyError at garbage collection or
exit. A real conversion + two loaders in a subprocess: stderr holds no `Exception ignored`."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import gc
import sys
from pathlib import Path
from tests.helpers import make_imagefolder
from loaders import LoaderSpec, build
from loaders.datasets import scan
ds = scan(make_imagefolder(Path(sys.argv[1])), progress=False)
spec = LoaderSpec(batch_size=4, res=32, workers=2, options={"progress": False})
with build("ffcv", "train", ds, spec) as a, build("ffcv", "val", ds, spec) as b:
    for e in range(2):
        a.set_epoch(e)
        for _ in a: pass
        for _ in b: pass
gc.collect()  # the dispatchers of the loaders just closed are finalized here (or at exit)
with build("ffcv", "train", ds, spec.with_(res=40)) as c:  # a third compile; the first two collected
    for _ in c: pass
gc.collect()
print("ok")
"""


def test_conversion_and_loaders_leave_stderr_without_numba_finalizer_errors(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOADERBENCH_DATA": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "tree")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
    assert "Exception ignored" not in out.stderr and "KeyError" not in out.stderr, out.stderr[-2000:]


def test_ffcv_leaves_numbas_shared_array_types_alone(tiny):
    import numba

    from loaders import LoaderSpec, build

    shared = [numba.uint8[::1], numba.uint64[::1], numba.uint32[::1], numba.uint8[:, ::1]]  # interned: FFCV gets these
    with build("ffcv", "val", tiny, LoaderSpec(batch_size=4, res=32, workers=1, options={"progress": False})) as loader:
        next(iter(loader))
    for t in shared:
        assert t.mutable and "readonly" not in repr(t).lower(), t
