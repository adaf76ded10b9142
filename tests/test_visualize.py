"""`python -m bench.visualize` writes the feature-map and filter grids for a saved checkpoint."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from bench.cli.config import RunConfig
from bench.harness import accuracy_mode
from bench.visualize import InputError, visualize
from tests.helpers import cpu_context

REPO = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def checkpoints(tiny, tmp_path_factory):
    """One checkpoint per architecture, each from a one-step accuracy run on the tiny set."""
    out = {}
    root = tmp_path_factory.mktemp("ckpt")
    for arch in ("demo_net", "seed_cnn", "resnet18"):
        cfg = RunConfig.of(mode="accuracy", arch=arch, res=32, batch_size=4, epochs=1, steps=1, amp="off", progress=False,
                           save_checkpoint=str(root / f"{arch}.pt"))
        accuracy_mode.run(cpu_context(cfg, tiny), "torchvision", arch)
        out[arch] = root / f"{arch}.pt"
    return out


def check_png(path: Path, min_side: int = 150) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG, path
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        w, h = img.size
    assert min_side <= w <= 4000 and min_side <= h <= 4000, (path, w, h)
    return w, h


@pytest.mark.parametrize("arch", ["demo_net", "seed_cnn", "resnet18"])
def test_writes_filter_and_activation_grids(arch, checkpoints, tiny, tmp_path):
    image = tiny.samples("val")[0][0]
    written = visualize(checkpoints[arch], image, tmp_path, deeper=3, max_channels=16)
    names = [p.name for p in written]
    assert names[0] == "input.png" and names[1].startswith("filters-")
    acts = [n for n in names if n.startswith("activations-")]
    assert len(acts) == 4, names  # the first conv and three deeper layers
    for p in written:
        assert p.parent == tmp_path and p.exists()
        check_png(p)


def test_deeper_layers_are_later_stages(checkpoints, tiny, tmp_path):
    names = [p.name for p in visualize(checkpoints["resnet18"], tiny.samples("val")[0][0], tmp_path, max_channels=4)]
    assert "activations-0-conv1.png" in names and "activations-3-layer4.png" in names, names


def test_cli(checkpoints, tiny, tmp_path):
    p = subprocess.run([sys.executable, "-m", "bench.visualize", "--checkpoint", str(checkpoints["seed_cnn"]),
                        "--image", tiny.samples("val")[0][0], "--out", str(tmp_path / "maps"), "--max-channels", "16"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    files = [Path(line) for line in p.stdout.splitlines()]
    assert len(files) == 6 and all(f.exists() for f in files)


def test_a_file_that_is_not_our_checkpoint_is_one_line_of_error(tmp_path, tiny):
    bad = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(InputError, match="no 'model' in the checkpoint.*--save-checkpoint"):
        visualize(bad, tiny.samples("val")[0][0], tmp_path)


CASES = ["missing checkpoint", "not a torch file", "a folder as checkpoint", "missing image", "not an image",
         "a folder as image", "a file as --out"]


@pytest.mark.parametrize("case", CASES)
def test_bad_inputs_are_one_line_exit_2(case, checkpoints, tiny, tmp_path, capsys):
    """In-process main() (test_cli runs the real entry point): any other exception fails the test."""
    from bench.visualize import main

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\xff\xd8 not really anything")
    ckpt, image, maps = str(checkpoints["seed_cnn"]), tiny.samples("val")[0][0], str(tmp_path / "maps")
    ckpt, image, maps, says = {"missing checkpoint": (str(tmp_path / "nope.pt"), image, maps, "no such file"),
                               "not a torch file": (str(junk), image, maps, "not a checkpoint"),
                               "a folder as checkpoint": (str(tmp_path), image, maps, "a folder, not a checkpoint file"),
                               "missing image": (ckpt, str(tmp_path / "nope.jpg"), maps, "no such file"),
                               "not an image": (ckpt, str(junk), maps, "not an image"),
                               "a folder as image": (ckpt, str(tmp_path), maps, "a folder, not an image file"),
                               "a file as --out": (ckpt, image, str(junk), "a file, not a folder")}[case]
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", ckpt, "--image", image, "--out", maps])
    assert e.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and says in line, line
