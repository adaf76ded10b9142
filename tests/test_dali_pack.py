"""DALI packing for the GPU machine: pack -> parts -> verify -> unpack -> import, on small fake
wheels laid out like the real ones (the real 200 MiB round trip: bench/gpu/dali_parts.py's
docstring and the closing note of issue 18)."""
import json
import os
import subprocess
import sys
import zipfile

import pytest

from bench.gpu import dali_install, dali_parts

TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"
PYV = f"{sys.version_info.major}.{sys.version_info.minor}"
OTHER = "cp399" if TAG != "cp399" else "cp398"


def _wheel(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


@pytest.fixture
def wheels(tmp_path):
    d = tmp_path / "wheels"
    d.mkdir()
    noise = os.urandom(150_000)  # incompressible: the xz stream spans several small parts
    abi = TAG.removeprefix("cp")
    _wheel(d / "nvidia_dali_fake-1.0-py3-none-any.whl", {
        "nvidia/dali/__init__.py": "__version__ = '9.9'\nfrom . import backend\n",
        "nvidia/dali/backend.py": "OK = True\n",
        f"nvidia/dali/backend_impl.cpython-{abi}-x86_64-linux-gnu.so": noise,
        f"nvidia/dali/backend_impl.cpython-{OTHER[2:]}-x86_64-linux-gnu.so": b"other python",
        f"nvidia/dali/backend_impl.cpython-{abi}t-x86_64-linux-gnu.so": b"free-threaded",
        "nvidia/dali/include/dali.h": b"header",
        "nvidia/dali/__pycache__/x.cpython-311.pyc": b"cache",
        "nvidia_dali_fake-1.0.dist-info/METADATA": "Name: nvidia-dali-fake\n",
    })
    _wheel(d / "nvidia_nvimgcodec_fake-1.0-py3-none-any.whl", {
        "nvidia/nvimgcodec/__init__.py": "",
        "nvidia/nvimgcodec/libnvimgcodec.so.0": b"lib",
        "nvidia/libnvcomp/bin/nvlzcat": b"tool",
        "nvidia/cu13/lib/libnvjpeg.so.13": b"nvjpeg",
    })
    return d


@pytest.mark.parametrize("member,kept", [
    (f"nvidia/dali/backend_impl.cpython-{TAG[2:]}-x86_64-linux-gnu.so", True),
    ("nvidia/dali/backend_impl.cpython-312-x86_64-linux-gnu.so", TAG == "cp312"),
    ("nvidia/dali/backend_impl.cpython-314t-x86_64-linux-gnu.so", False),
    ("nvidia/dali/libdali.so", True),
    ("nvidia/nvimgcodec/extensions/libnvjpeg_ext.so.0.9.0", True),
    ("nvidia/libnvcomp/include/nvcomp.h", False),
    ("optree/_C.cpython-39-x86_64-linux-gnu.so", TAG == "cp39"),
])
def test_keep_trims_other_pythons_and_headers(member, kept):
    assert dali_parts.keep(member, TAG) is kept


def test_pack_unpack_import_round_trip(wheels, tmp_path):
    out, target = tmp_path / "parts", tmp_path / "site"
    m = dali_parts.pack(out, PYV, wheels, part_mib=0.05, preset=1)
    limit = int(0.05 * 2**20)
    assert len(m["parts"]) >= 3 and all(p["bytes"] <= limit for p in m["parts"])
    assert m["trimmed_files"] == 5 and json.loads((out / "MANIFEST.json").read_text()) == m
    assert dali_install.main(["--parts", str(out), "--target", str(target)]) == 0
    dali = target / "nvidia" / "dali"
    assert (dali / f"backend_impl.cpython-{TAG[2:]}-x86_64-linux-gnu.so").stat().st_size == 150_000
    assert not list(dali.glob(f"*{OTHER[2:]}*")) and not (dali / "include").exists()
    # A child process under the printed environment imports the packed nvidia.dali, ahead of
    # any nvidia.dali this venv has, and the other nvidia.* packages still resolve.
    env = {**os.environ, **dali_install.environment(target)}
    code = ("import nvidia.dali, nvidia.nvimgcodec; print(nvidia.dali.__version__, nvidia.dali.__file__);"
            "import pkgutil, nvidia; print(sorted(m.name for m in pkgutil.iter_modules(nvidia.__path__)))")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    version, path = r.stdout.splitlines()[0].split()
    assert version == "9.9" and path.startswith(str(target))
    assert str(target / "nvidia" / "cu13" / "lib") in env["LD_LIBRARY_PATH"].split(os.pathsep)


def test_second_install_is_a_no_op(wheels, tmp_path, capsys):
    out, target = tmp_path / "parts", tmp_path / "site"
    dali_parts.pack(out, PYV, wheels, part_mib=0.05, preset=1)
    assert dali_install.main(["--parts", str(out), "--target", str(target)]) == 0
    assert dali_install.main(["--parts", str(out), "--target", str(target)]) == 0
    assert "already unpacked" in capsys.readouterr().out


def test_same_wheels_same_bytes(wheels, tmp_path):
    a = dali_parts.pack(tmp_path / "a", PYV, wheels, part_mib=0.05, preset=1)
    b = dali_parts.pack(tmp_path / "b", PYV, wheels, part_mib=0.05, preset=1)
    assert a["sha256"] == b["sha256"]


@pytest.mark.parametrize("damage,words", [("missing", "parts missing"), ("corrupt", "damaged"),
                                          ("manifest", "no MANIFEST.json"), ("python", "this python is")])
def test_bad_parts_give_one_clear_line(wheels, tmp_path, capsys, damage, words):
    out = tmp_path / "parts"
    m = dali_parts.pack(out, PYV, wheels, part_mib=0.05, preset=1)
    part = out / m["parts"][1]["name"]
    if damage == "missing":
        part.unlink()
    elif damage == "corrupt":
        part.write_bytes(part.read_bytes()[:-1] + b"\0")
    elif damage == "python":  # packed for another Python (the GPU machine's 3.12, say)
        m["tag"] = OTHER
        (out / "MANIFEST.json").write_text(json.dumps(m))
    else:
        (out / "MANIFEST.json").unlink()
    assert dali_install.main(["--parts", str(out), "--target", str(tmp_path / "site")]) == 2
    text = capsys.readouterr().out.strip()
    assert words in text and len(text.splitlines()) == 1 and "Traceback" not in text
