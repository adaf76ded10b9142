"""`python -m bench.visualize`: look inside a trained network.

    python -m bench.visualize --checkpoint model.pt --image cat.jpg --out maps/

Writes PNG grids, each titled with the predicted class (class names come from the checkpoint
that `--save-checkpoint` wrote):
  filters-<layer>.png          the first convolution's filters (RGB when it reads 3 channels)
  activations-<k>-<layer>.png  feature maps of the first convolution and of the end of each
                               later stage (the last module at each spatial size), strongest
                               channels first
  input.png                    the image as the network saw it, with the top-5 classes
The image is prepared like a validation image: shorter side resized to res / crop_ratio, center
crop res, normalised by the same function the loaders use.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import models  # noqa: E402
from loaders.normalize import normalize  # noqa: E402
from loaders.reference import val_crop  # noqa: E402
from loaders.spec import LoaderSpec  # noqa: E402


class InputError(ValueError):
    """A bad --checkpoint, --image or --out: main() says it in one line and exits 2, like every
    other bad argument."""


# -- model and image ------------------------------------------------------------------------
def load(checkpoint: str | Path, device="cpu") -> tuple[nn.Module, dict]:
    """The model a checkpoint holds, in eval mode, and its metadata (arch, classes, res, config)."""
    if not Path(checkpoint).is_file():
        raise InputError(f"--checkpoint {checkpoint}: " + ("a folder, not a checkpoint file" if Path(checkpoint).is_dir() else "no such file"))
    try:
        blob = torch.load(checkpoint, map_location=device, weights_only=False)
    except Exception as e:  # not a torch file at all (a JPEG, a truncated download, ...)
        raise InputError(f"--checkpoint {checkpoint}: not a checkpoint ({type(e).__name__}); write one with "
                         "`python -m bench.run --mode accuracy ... --save-checkpoint PATH`") from None
    if not isinstance(blob, dict):
        blob = {}
    missing = [k for k in ("model", "arch", "classes") if k not in blob]
    if missing:
        raise InputError(f"--checkpoint {checkpoint}: no {missing[0]!r} in the checkpoint; write one with "
                         "`python -m bench.run --mode accuracy ... --save-checkpoint PATH`")
    cfg = blob.get("config") or {}
    res = int(blob.get("res") or cfg.get("res") or 224)
    model = models.create(blob["arch"], len(blob["classes"]), res=res, blurpool=bool(cfg.get("blurpool")))
    model.load_state_dict(blob["model"])
    meta = {"arch": blob["arch"], "classes": list(blob["classes"]), "res": res, "crop_ratio": float(cfg.get("crop_ratio") or 224 / 256)}
    return model.to(device).eval(), meta


def prepare_image(path: str | Path, res: int, crop_ratio: float, device="cpu") -> tuple[torch.Tensor, np.ndarray]:
    """(normalised 1x3xHxW input, the HxWx3 uint8 crop) as validation would make them."""
    from PIL import Image

    from PIL import UnidentifiedImageError

    if not Path(path).is_file():
        raise InputError(f"--image {path}: " + ("a folder, not an image file" if Path(path).is_dir() else "no such file"))
    try:
        with Image.open(path) as img:
            arr = val_crop(img, res, int(round(res / crop_ratio)))
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"--image {path}: not an image PIL can read ({e.__class__.__name__}); give a JPEG or PNG") from None
    spec = LoaderSpec(device=str(device), dtype="float32", channels_last=False)
    return normalize(torch.from_numpy(np.array(arr))[None], spec), arr


# -- which layers -----------------------------------------------------------------------------
def capture(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
    """Logits and every module's 4-d output, in the order the modules finished."""
    seen: list[tuple[str, torch.Tensor]] = []
    hooks = []
    for name, m in model.named_modules():
        if name:
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: seen.append((name, out.detach().float().clone()))
                if isinstance(out, torch.Tensor) and out.ndim == 4 else None))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    return logits, seen


def pick_layers(model: nn.Module, seen, deeper: int = 3) -> list[tuple[str, torch.Tensor]]:
    """The first convolution's output, then the end of later stages: for each smaller spatial
    size, the last module to produce it (a ResNet's layer1..layer4, a plain CNN's last ReLU
    before each pool), `deeper` of them spread evenly from the first stage to the last."""
    mods = dict(model.named_modules())
    first_conv = next(n for n, m in mods.items() if isinstance(m, nn.Conv2d))
    first = next(i for i, (n, _) in enumerate(seen) if n == first_conv)
    head_pools = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)  # the classifier's pooling is no stage
    first_size = tuple(seen[first][1].shape[-2:])
    last_at: dict[tuple, int] = {}
    for i, (name, t) in enumerate(seen[first + 1:], start=first + 1):
        size = tuple(t.shape[-2:])
        if size != first_size and not isinstance(mods.get(name), head_pools):
            last_at[size] = i  # dicts keep first-insertion order: sizes in network order
    stages = list(last_at.values())
    if len(stages) > deeper:
        stages = [stages[round(k * (len(stages) - 1) / (deeper - 1))] for k in range(deeper)] if deeper > 1 else stages[-1:]
    return [seen[first]] + [seen[i] for i in stages]


# -- drawing ----------------------------------------------------------------------------------
def _grid(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot_maps(fmap: torch.Tensor, title: str, path: Path, max_channels: int = 64) -> Path:
    """One panel per channel (the strongest mean activation first)."""
    maps = fmap[0]
    order = maps.mean(dim=(1, 2)).argsort(descending=True)[:max_channels]
    rows, cols = _grid(len(order))
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows + 0.7), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, c in zip(axes.flat, order.tolist()):
        ax.imshow(maps[c].numpy(), cmap="viridis", interpolation="nearest")
        ax.set_title(str(c), fontsize=6, pad=1)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_filters(weight: torch.Tensor, title: str, path: Path, max_channels: int = 64) -> Path:
    """First-layer kernels: RGB images when they read 3 channels, else their channel mean."""
    w = weight.detach().float().cpu()[:max_channels]
    rows, cols = _grid(len(w))
    fig, axes = plt.subplots(rows, cols, figsize=(1.0 * cols, 1.0 * rows + 0.7), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, k in zip(axes.flat, w):
        k = (k - k.min()) / (k.max() - k.min() + 1e-8)  # each kernel stretched to [0, 1]
        ax.imshow(k.permute(1, 2, 0).numpy() if k.shape[0] == 3 else k.mean(0).numpy(),
                  cmap=None if k.shape[0] == 3 else "gray", interpolation="nearest")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_input(arr: np.ndarray, probs: torch.Tensor, classes: list[str], title: str, path: Path) -> Path:
    top = probs.topk(min(5, len(classes)))
    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 3.2))
    a.imshow(arr, interpolation="nearest")
    a.axis("off")
    names = [classes[i] for i in top.indices.tolist()][::-1]
    b.barh(range(len(names)), top.values.tolist()[::-1], color="tab:blue")
    b.set_yticks(range(len(names)), names, fontsize=8)
    b.set_xlim(0, 1)
    b.set_xlabel("probability")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- entry point ------------------------------------------------------------------------------
def visualize(checkpoint, image, out, deeper: int = 3, max_channels: int = 64, device="cpu") -> list[Path]:
    model, meta = load(checkpoint, device)
    x, arr = prepare_image(image, meta["res"], meta["crop_ratio"], device)
    logits, seen = capture(model, x)
    probs = logits.float().softmax(1)[0]
    pred = int(probs.argmax())
    label = f"predicted: {meta['classes'][pred]} ({probs[pred]:.0%})"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [plot_input(arr, probs, meta["classes"], f"{Path(image).name} - {meta['arch']} - {label}", out / "input.png")]
    conv_name, conv = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    written.append(plot_filters(conv.weight, f"{meta['arch']} {conv_name}: {tuple(conv.weight.shape)} filters - {label}",
                                out / f"filters-{_safe(conv_name)}.png", max_channels))
    for k, (name, fmap) in enumerate(pick_layers(model, seen, deeper)):
        c, h, w = fmap.shape[1:]
        title = f"{meta['arch']} {name}: {c} x {h} x {w} activations - {label}"
        written.append(plot_maps(fmap, title, out / f"activations-{k}-{_safe(name)}.png", max_channels))
    return written


def main(argv=None) -> int:
    from .cli.parser import Parser  # one-line errors with a "did you mean", exit 2

    p = Parser(prog="python -m bench.visualize", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by --save-checkpoint")
    p.add_argument("--image", required=True, help="an image file (JPEG, PNG, ...)")
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.add_argument("--layers", type=int, default=3, help="deeper layers shown after the first convolution")
    p.add_argument("--max-channels", type=int, default=64, help="channels (panels) per grid")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    for flag in ("layers", "max_channels"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be a positive integer")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        p.error(f"--out {args.out}: a file, not a folder; give a folder for the PNGs")
    try:
        written = visualize(args.checkpoint, args.image, args.out, args.layers, args.max_channels, args.device)
    except InputError as e:
        p.error(str(e))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
