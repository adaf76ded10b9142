"""Awkward image modes load the same in every backend (loaders/image_modes.py's rule): RGBA, LA,
palette with and without transparency, bilevel and 16-bit grayscale PNG, CMYK and grayscale
JPEG, EXIF-rotated JPEG. val: each backend's pixels against the torchvision backend's within
that backend's parity bound; train: solid-colour files keep their colour, a gradient marker
tagged "rotate 90" keeps its axes."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from loaders import LoaderSpec, build
from loaders.datasets import scan
from loaders.datasets.generated import render
from loaders.image_modes import to_rgb
from tests.helpers import collect, to_levels

pytestmark = [pytest.mark.usefixtures("dry_run_cuda_backends"), pytest.mark.timeout(300),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),  # numba finalizer (test_ffcv.py)
              pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")]

# (registry name, options): every backend that runs here, both torchvision pools and its PIL path.
BACKENDS = {"torchvision": ("torchvision", {"pool": "threads"}), "torchvision-processes": ("torchvision", {"pool": "processes"}),
            "torchvision-pil": ("torchvision", {"decoder": "pil"}), "torchvision-gpu": ("torchvision-gpu", {}),
            "dali-cpu": ("dali-cpu", {}), "ffcv": ("ffcv", {"progress": False})}
# Mean |diff| in 0-255 levels against the torchvision backend: the bounds the backends already
# meet on ordinary JPEGs (tests/test_dali.py, test_torchvision_gpu.py, test_ffcv.py), per image
# where those tests bound each image. FFCV (JPEG re-encoded, crop before resize) is bounded on the
# mean over all images; its per-image guard only catches a wrong mode (a rotated or white image
# is 40-140 levels off).
VAL_BOUND = {"torchvision-processes": (0, 0), "torchvision-pil": (0, 0), "torchvision-gpu": (2.0, 4.0), "dali-cpu": (2.0, 2.0),
             "ffcv": (4.0, 8.0)}
SPEC = LoaderSpec(batch_size=8, res=32, val_res=64, workers=2, seed=1, flip=False, scale=(0.5, 1.0))
EXIF_ROTATE_90 = 6  # "rotate 90 CW to display"


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90, **kw} if fmt == "JPEG" else kw))
    return buf.getvalue()


def _exif(orientation: int) -> bytes:
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def awkward(img: Image.Image) -> dict[str, bytes]:
    """Every awkward mode of one RGB picture (alpha a left-to-right ramp, so that compositing
    instead of dropping it would show)."""
    a = np.asarray(img)
    h, w = a.shape[:2]
    ramp = np.tile(np.linspace(0, 255, w, dtype=np.uint8), (h, 1))
    gray = np.asarray(img.convert("L"))
    p = img.convert("P", palette=Image.ADAPTIVE, colors=64)
    noise = np.random.default_rng(0).integers(0, 256, size=gray.shape)
    return {
        "rgba.png": _save(Image.fromarray(np.dstack([a, ramp]), "RGBA"), "PNG"),
        "la.png": _save(Image.fromarray(np.dstack([gray, ramp]), "LA"), "PNG"),
        "p.png": _save(p, "PNG"),
        "p_transparent.png": _save(p, "PNG", transparency=0),
        "bilevel.png": _save(img.convert("1"), "PNG"),
        "gray16.png": _save(Image.fromarray((gray.astype(np.uint16) * 257 + noise).clip(0, 65535).astype(np.uint16)), "PNG"),
        "cmyk.jpg": _save(img.convert("CMYK"), "JPEG"),
        "gray.jpg": _save(img.convert("L"), "JPEG"),
        "exif_rot90.jpg": _save(img, "JPEG", exif=_exif(EXIF_ROTATE_90)),
    }


def marker() -> Image.Image:
    """R grows with x, G with y, on a 2:1 image: its axes show through any crop."""
    x, y = np.meshgrid(np.arange(128), np.arange(64))
    return Image.fromarray(np.dstack([x * 2, y * 4, np.full_like(x, 128)]).astype(np.uint8))


@pytest.fixture(scope="module")
def modes(tmp_path_factory):
    """val: the awkward modes of real-looking pictures; train: of solid colours, plus the
    EXIF-tagged marker."""
    root = tmp_path_factory.mktemp("modes")
    (root / "val" / "a").mkdir(parents=True)
    (root / "train" / "a").mkdir(parents=True)
    for name, data in awkward(Image.open(io.BytesIO(render("val", 0, 0))).convert("RGB")).items():
        (root / "val" / "a" / name).write_bytes(data)
    for name, data in awkward(Image.new("RGB", (90, 70), (200, 120, 40))).items():
        (root / "train" / "a" / name).write_bytes(data)
    (root / "train" / "a" / "marker_rot90.jpg").write_bytes(_save(marker(), "JPEG", exif=_exif(EXIF_ROTATE_90), quality=95))
    return scan(root, progress=False)


def _build(key, split, ds, spec=SPEC):
    name, options = BACKENDS[key]
    return build(name, split, ds, spec.with_(options=options))


# -- the rule itself ---------------------------------------------------------------------
def test_the_rule_is_imagefolders_pil_loader_but_for_16_bit(modes):
    """torchvision's ImageFolder loader (open + convert("RGB")): the same pixels for every
    mode, EXIF orientation not applied; only a 16-bit grayscale PNG differs (it clips to white)."""
    from torchvision.datasets.folder import pil_loader

    for path, _ in modes.samples("val"):
        theirs = np.asarray(pil_loader(path))
        with Image.open(path) as img:
            ours = np.asarray(to_rgb(img))
        if Path(path).name == "gray16.png":
            assert theirs.mean() > 250, "ImageFolder's 16-bit PNG is all white"
            assert abs(ours.mean() - np.asarray(Image.open(io.BytesIO(render("val", 0, 0))).convert("L")).mean()) < 1.5
        else:
            assert np.array_equal(theirs, ours), Path(path).name


def test_pil_does_not_apply_exif_orientation(tmp_path):
    img = marker()
    tagged = Image.open(io.BytesIO(_save(img, "JPEG", exif=_exif(EXIF_ROTATE_90))))
    plain = Image.open(io.BytesIO(_save(img, "JPEG")))
    assert tagged.getexif()[0x0112] == EXIF_ROTATE_90
    assert tagged.size == plain.size == (128, 64)
    assert np.array_equal(np.asarray(to_rgb(tagged)), np.asarray(plain))


def test_16_bit_is_its_high_byte_and_alpha_is_dropped():
    v = np.array([[0, 255, 256, 32767, 32768, 65535]], dtype=np.uint16)
    assert np.asarray(to_rgb(Image.fromarray(v)))[0, :, 0].tolist() == [0, 0, 1, 127, 128, 255]
    assert np.asarray(to_rgb(Image.fromarray(v.astype(np.int32), "I")))[0, :, 1].tolist() == [0, 0, 1, 127, 128, 255]
    rgba = np.array([[[200, 120, 40, 0], [10, 20, 30, 128]]], dtype=np.uint8)
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(rgba, "RGBA"))), rgba[..., :3])


# -- every backend ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference_val(modes):
    with _build("torchvision", "val", modes) as loader:
        return to_levels(collect(loader)[0], SPEC).round()


@pytest.mark.parametrize("key", list(VAL_BOUND))
def test_val_pixels_agree_with_torchvision(key, modes, reference_val):
    with _build(key, "val", modes) as loader:
        got = to_levels(collect(loader)[0], SPEC).round()
    per_image = (got - reference_val).abs().mean(dim=(1, 2, 3))
    names = [Path(p).name for p, _ in modes.samples("val")]
    report = {n: round(float(v), 2) for n, v in zip(names, per_image)}
    print(f"{key}: mean |diff| vs torchvision {per_image.mean():.2f} levels; per image {report}")
    mean_bound, image_bound = VAL_BOUND[key]
    assert per_image.mean() <= mean_bound and per_image.max() <= image_bound, report


def test_the_torchvision_backend_follows_the_rule(modes, reference_val):
    from loaders.reference import val_crop

    want = []
    for path, _ in modes.samples("val"):
        with Image.open(path) as img:
            want.append(val_crop(img, SPEC.val_res, SPEC.resize_side("val")))
    assert torch.equal(reference_val, torch.from_numpy(np.stack(want)).permute(0, 3, 1, 2).float())


@pytest.mark.parametrize("key", list(BACKENDS))
def test_train_keeps_colours_and_ignores_exif(key, modes):
    """Solid colours stay their colour whatever the crop (16-bit not white, alpha not mixed
    in); the marker tagged rotate-90 keeps R along the width and G along the height."""
    names = [Path(p).name for p, _ in modes.samples("train")]
    want = {}
    for path, _ in modes.samples("train"):
        with Image.open(path) as img:
            want[Path(path).name] = np.asarray(to_rgb(img)).reshape(-1, 3).mean(0)
    with _build(key, "train", modes) as loader:
        x, _ = collect(loader)
        order = loader.order()
    got = to_levels(x, SPEC)
    for name, img in zip([names[i] for i in order], got):
        if name.startswith("marker"):
            cols, rows = img[0].mean(0), img[1].mean(1)  # R per column, G per row
            assert (cols[-1] - cols[0]) > 20 and abs(float(img[0].mean(1)[-1] - img[0].mean(1)[0])) < 8, f"{key}: marker rotated"
            assert (rows[-1] - rows[0]) > 20, f"{key}: marker rotated"
        else:
            diff = (img.mean(dim=(1, 2)).numpy() - want[name])
            assert np.abs(diff).max() <= 3, f"{key} {name}: colour {img.mean(dim=(1, 2)).tolist()} != {want[name].tolist()}"
